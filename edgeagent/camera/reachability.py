"""Is anything accepting TCP connections at the camera's RTSP address? The cheap question asked while a
camera is away, so that the source reconnects within a probe interval of its return, however long it was
gone, without opening RTSP sessions (or sending credentials) into the void.

A probe is a non-blocking TCP handshake, closed as soon as it completes. One starts every PROBE_INTERVAL_S
and each may take up to PROBE_TIMEOUT_S, so a slow link (a cabinet on a cellular router) is not mistaken
for a dead one, and yet a camera that comes back is seen within one interval. While the camera refuses,
a probe is a SYN and an RST; while its address is dead (no RST, no ARP answer), a SYN and the kernel's
retransmissions of it within the timeout. Runs in the ingest thread, never on the event loop.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

# A quarter second: the RTSP open, the authentication round trips and the first keyframe take 1.2-1.7 s on
# this machine's reference runs, so half a second of probe interval left too little of the 2 s target.
PROBE_INTERVAL_S = 0.25
PROBE_TIMEOUT_S = 3.0
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}


def rtsp_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or DEFAULT_PORTS.get(parts.scheme, 554)


def _reason(code: int) -> str:
    """A probe's failure in the words of the health message (``describe_error``'s for the same cases)."""
    if code == errno.ECONNREFUSED:
        return "connection refused"
    if code == errno.ETIMEDOUT:
        return "timed out"
    return os.strerror(code).lower()


def _start_probe(host: str, port: int) -> socket.socket | str:
    """A socket with a connect under way, or why it failed at once (refused, no route, bad name)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except OSError:
        return "camera address not resolved"
    sock = socket.socket(family, kind, proto)
    sock.setblocking(False)
    code = sock.connect_ex(address)
    if code in (0, errno.EINPROGRESS):
        return sock
    sock.close()
    return _reason(code)


def wait_until_accepting(
    host: str,
    port: int,
    wake: threading.Event,
    interval_s: float = PROBE_INTERVAL_S,
    timeout_s: float = PROBE_TIMEOUT_S,
    on_first_failure: Callable[[str], None] | None = None,
) -> tuple[bool, int]:
    """Probe until the address accepts or ``wake`` is set: (accepted, probes that failed before).

    ``wake`` is looked at between probes, so a stop or restart is seen within ``interval_s``.
    ``on_first_failure(reason)`` is called once, when the first probe fails or times out.
    """
    failed = 0
    pending: dict[socket.socket, float] = {}  # probe -> its deadline

    def count(reason: str) -> None:
        nonlocal failed
        failed += 1
        if failed == 1 and on_first_failure is not None:
            on_first_failure(reason)

    def drop(probe: socket.socket) -> None:
        selector.unregister(probe)
        del pending[probe]
        probe.close()

    next_probe = time.monotonic()
    with selectors.DefaultSelector() as selector:
        try:
            while not wake.is_set():
                now = time.monotonic()
                if now >= next_probe:
                    next_probe = now + interval_s
                    sock = _start_probe(host, port)
                    if isinstance(sock, str):
                        count(sock)
                    else:
                        pending[sock] = now + timeout_s
                        selector.register(sock, selectors.EVENT_WRITE)
                for key, _ in selector.select(max(0.0, next_probe - time.monotonic())):
                    probe = key.fileobj
                    assert isinstance(probe, socket.socket)
                    code = probe.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if code == 0:
                        return True, failed
                    drop(probe)
                    count(_reason(code))
                now = time.monotonic()
                for probe in [probe for probe, deadline in pending.items() if deadline <= now]:
                    drop(probe)
                    count(f"no answer within {timeout_s:.0f} s")
            return False, failed
        finally:
            for probe in pending:
                probe.close()
