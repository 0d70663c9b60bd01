"""Ports for servers started by tests.

A port is chosen before the server that binds it starts (mosquitto, the camera simulator and the agent
take a port number, not port 0), and it stays the test's while that server restarts in place. Other test
processes on this machine choose meanwhile: the other pytest-xdist worker, and other whole runs of the
suite beside this one (CI in a clean clone while a developer runs tests). A port that is free when it is
chosen can so be chosen twice before either binds it: an agent then failed to start with "address already
in use" on its HTTP port. Each choice is therefore claimed in a directory the test processes of this
user on this machine share (``CLAIMS``), under a lock; no process chooses a port another one claimed while
that process lives (and for ``CLAIM_TTL_S`` at most).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.support.wait import wait_until

# Below Linux's ephemeral range (32768-60999), so a port handed out here is never taken meanwhile by the
# source port of some outgoing connection.
_LOW, _HIGH = 20000, 32000
# One directory per user: a user cannot write another one's (test runs of two users do not coordinate).
CLAIMS = Path(tempfile.gettempdir()) / f"edgeagent-tests-ports-{os.getuid()}"
# Longer than any test (pytest-timeout: 300 s) and any module's fixtures hold a port: a claim of a process
# that still runs is honoured this long, one of a process that ended not at all.
CLAIM_TTL_S = 3600.0


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
_swept = False


def _bindable(port: int, host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def machine_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` held against every other process on this machine (test processes that
    choose a shared resource: a port, link addresses)."""
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def _claims_locked() -> Iterator[Path]:
    """The claims directory, locked against every other test process on this machine."""
    CLAIMS.mkdir(exist_ok=True)
    with machine_lock(CLAIMS / ".lock"):
        yield CLAIMS


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it runs
        return True
    return True


def _claim_holds(path: Path, now: float) -> bool:
    """The claim in ``path`` is another live process's (and not older than the TTL)."""
    try:
        pid = int(path.read_text().split()[0])
        age = now - path.stat().st_mtime
    except (OSError, ValueError, IndexError):
        return False  # gone meanwhile, or half written by a process that died: no claim
    return pid != os.getpid() and age < CLAIM_TTL_S and _alive(pid)


def _sweep(directory: Path, now: float) -> None:
    """Remove the claims that no longer hold (once per process: the directory does not grow for ever)."""
    for path in directory.iterdir():
        if path.name.isdigit() and not _claim_holds(path, now):
            with contextlib.suppress(OSError):
                path.unlink()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free now, was not handed out before in this test process, and is claimed for it
    against every other test process on this machine."""
    global _swept
    with _lock, _claims_locked() as claims:
        now = time.time()
        if not _swept:
            _sweep(claims, now)
            _swept = True
        for _ in range(1000):
            port = _rng.randrange(_LOW, _HIGH)
            if port in _given or _claim_holds(claims / str(port), now) or not _bindable(port, host):
                continue
            (claims / str(port)).write_text(f"{os.getpid()}\n")
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
