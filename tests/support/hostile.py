"""Helpers for the hostile-input suite: a /healthz prober, raw attacker sockets, log and process checks.

Attackers connect from other loopback addresses (127.0.0.2 and up) so they count as other hosts than
the operator's client on 127.0.0.1; everything still listens on 127.0.0.1 only.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.agent import AgentProcess


@dataclass
class Probe:
    """GET /healthz every ``period_s`` from 127.0.0.1 in a thread; records how long each answer took."""

    host: str
    port: int
    period_s: float = 0.1
    timeout_s: float = 1.0
    latencies: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                status = healthz(self.host, self.port, self.timeout_s)
                self.statuses.append(status)
                self.latencies.append(time.monotonic() - started)
            except OSError as exc:
                self.failures.append(f"{type(exc).__name__} after {time.monotonic() - started:.2f} s")
            self._stop.wait(self.period_s)

    def __enter__(self) -> Probe:
        self._thread = threading.Thread(target=self._run, name="healthz-probe", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def assert_answered_within(self, seconds: float) -> None:
        assert not self.failures, f"/healthz failed {len(self.failures)} time(s): {self.failures[:5]}"
        assert self.latencies, "the probe never got an answer"
        assert max(self.latencies) < seconds, f"slowest /healthz answer took {max(self.latencies):.2f} s"


def healthz(host: str, port: int, timeout_s: float = 1.0, source: str = "127.0.0.1") -> int:
    connection = http.client.HTTPConnection(host, port, timeout=timeout_s, source_address=(source, 0))
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def get(agent: AgentProcess, path: str, token: str | None, timeout_s: float = 1.0,
        source: str = "127.0.0.1") -> tuple[int, bytes, float]:  # fmt: skip
    """(status, body, seconds taken) of ``GET path`` with ``Authorization: Bearer token``."""
    host, port = agent.config["http"]["listen"].rsplit(":", 1)
    started = time.monotonic()
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout_s, source_address=(source, 0))
    try:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read(), time.monotonic() - started
    finally:
        connection.close()


def http_address(agent: AgentProcess) -> tuple[str, int]:
    host, port = agent.config["http"]["listen"].rsplit(":", 1)
    return host, int(port)


def attacker_socket(host: str, port: int, source: str) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=5, source_address=(source, 0))
    return sock


def closed_by_peer(sock: socket.socket) -> bool:
    """True when the other side closed (or reset) ``sock``; never blocks."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


def send_raw(host: str, port: int, data: bytes, timeout_s: float = 5.0, source: str = "127.0.0.2") -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes (or ``timeout_s``)."""
    with socket.create_connection((host, port), timeout=timeout_s, source_address=(source, 0)) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except OSError:
            pass
        return b"".join(chunks)


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_bytes(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    assert match, text
    return int(match.group(1)) * 1024


def assert_no_secret_in_log(agent: AgentProcess, *secrets: str | None) -> None:
    """No secret (nor a long piece of one) anywhere in the agent's output."""
    text = agent.log_text()
    for secret in secrets:
        if not secret:
            continue
        for piece in {secret, secret[:12], secret[-12:]}:
            assert piece not in text, f"a secret ({len(secret)} characters) appears in the agent's log"


def assert_log_lines_bounded(agent: AgentProcess, limit: int = 1000) -> None:
    longest = max((len(line) for line in agent.log_text().splitlines()), default=0)
    assert longest <= limit, f"a log line of {longest} characters"
