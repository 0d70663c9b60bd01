"""Ports for servers started by tests."""

from __future__ import annotations

import os
import random
import socket
import threading
from collections.abc import Callable

from tests.support.wait import wait_until

# Below Linux's ephemeral range (32768-60999), so a port handed out here is never taken meanwhile by the
# source port of some outgoing connection.
_LOW, _HIGH = 20000, 32000


def _worker_range(low: int, high: int) -> tuple[int, int]:
    """Each pytest-xdist worker its own slice of the range: two workers never hand out the same port."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ... (unset without xdist)
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or count < 2:
        return low, high
    width = (high - low) // count
    start = low + int(worker[2:]) % count * width
    return start, start + width


_LOW, _HIGH = _worker_range(_LOW, _HIGH)
_lock = threading.Lock()
_given: set[int] = set()
_rng = random.Random()


def _bindable(port: int, host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free now and was not handed out before in this test process."""
    with _lock:
        for _ in range(1000):
            port = _rng.randrange(_LOW, _HIGH)
            if port in _given or not _bindable(port, host):
                continue
            _given.add(port)
            return port
    raise RuntimeError("no free port found")


def wait_for_port(host: str, port: int, timeout: float = 10.0, alive: Callable[[], bool] | None = None) -> None:
    """Wait until something accepts TCP connections on host:port.

    Polled: there is no event for "a foreign process now listens". ``alive`` (a callable) lets the caller
    stop early when the server process died.
    """

    def accepting() -> bool:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            pass
        if alive is not None and not alive():
            raise RuntimeError(f"server for {host}:{port} exited before listening")
        return False

    try:
        wait_until(accepting, timeout, f"a listener on {host}:{port}", interval=0.02)
    except AssertionError:
        raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s") from None
