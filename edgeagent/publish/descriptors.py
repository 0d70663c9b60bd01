"""The agent's file descriptors: the limit raised once, a reserve for cameras, the broker and viewers,
and whether the agent can still accept connections (``/healthz`` and the systemd watchdog ask).

The process has a fixed number of descriptors (RLIMIT_NOFILE). HTTP gets a share of what the reserve
leaves (``http_limits.ConnectionLimits``); when free descriptors fall under the reserve anyway, or
``accept()`` fails with EMFILE, the agent says it is degraded instead of looking healthy while no one
can reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

NOFILE_CEILING = 65536  # raising the soft limit further gains nothing and slows code that walks all fds
BASE_RESERVE = 128  # broker, logs, pipes, libraries, a snapshot's files: what the agent needs with no camera
PER_CAMERA_RESERVE = 8  # RTSP TCP, RTP/RTCP over UDP, a reconnect overlapping the old socket
PER_VIEWER_RESERVE = 8  # aioice opens UDP sockets per host address, plus TURN
ACCEPT_ERROR_MEMORY_S = 30.0
ACCEPT_OUT_OF_RESOURCES = "socket.accept() out of system resource"


def raise_nofile_limit(ceiling: int = NOFILE_CEILING) -> int:
    """Raise the soft descriptor limit to the hard one (at most ``ceiling``); return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return ceiling if soft == resource.RLIM_INFINITY else soft


def open_descriptors() -> int | None:
    """Descriptors in use; None when they cannot be counted (listing them needs one: none may be left)."""
    for directory in ("/proc/self/fd", "/dev/fd"):
        with contextlib.suppress(OSError):
            return len(os.listdir(directory)) - 1  # listdir's own descriptor
    return None


def descriptor_reserve(cameras: int, max_viewers: int) -> int:
    return BASE_RESERVE + PER_CAMERA_RESERVE * cameras + PER_VIEWER_RESERVE * max_viewers


class AcceptHealth:
    """Can the agent accept? Free descriptors above the reserve, and no EMFILE from accept() lately.

    ``install`` takes the loop's accept errors from asyncio's exception handler (which otherwise logs a
    traceback for every attempt, thousands a second) and logs them once a minute with a count.
    """

    def __init__(
        self,
        nofile: int,
        reserve: int,
        clock: Callable[[], float] = time.monotonic,
        limit: Callable[[], int] | None = None,
    ) -> None:
        self.nofile = nofile
        self.reserve = reserve
        self._clock = clock
        self._limit = limit or self._soft_limit
        self.accept_errors_total = 0
        self._last_accept_error: float | None = None
        self._last_logged: float | None = None
        self._unlogged = 0

    def _soft_limit(self) -> int:
        # The limit as it is now: an operator (or prlimit) may change it while the agent runs.
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return self.nofile if soft == resource.RLIM_INFINITY else soft

    def free_descriptors(self) -> int:
        used = open_descriptors()
        return 0 if used is None else self._limit() - used

    def problem(self) -> str | None:
        """``None`` when accepting works; else why it may not."""
        now = self._clock()
        if self._last_accept_error is not None and now - self._last_accept_error < ACCEPT_ERROR_MEMORY_S:
            return "accept() failed for lack of descriptors"
        free = self.free_descriptors()
        if free < self.reserve:
            return f"{free} free file descriptors, fewer than the {self.reserve} kept in reserve"
        return None

    def accept_failed(self) -> None:
        now = self._clock()
        self.accept_errors_total += 1
        self._last_accept_error = now
        self._unlogged += 1
        if self._last_logged is None or now - self._last_logged >= 60:
            log.error(
                "http: cannot accept connections: out of file descriptors (%d time(s) since the last line)",
                self._unlogged,
            )
            self._last_logged = now
            self._unlogged = 0

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        previous = loop.get_exception_handler()

        def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            if str(context.get("message", "")).startswith(ACCEPT_OUT_OF_RESOURCES):
                self.accept_failed()
            elif previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(handler)
