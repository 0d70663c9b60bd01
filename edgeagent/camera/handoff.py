"""Calls from ingest threads to the event loop: in order, with one wake-up of the loop for all that wait.

Waking the loop is the dearest part of handing it a packet: measured here (one 1080p30 camera, two cores),
``loop.call_soon_threadsafe`` per packet cost 0.6 % of a core more than no hand-off at all, two thirds of it
the kernel's wake-up and a third asyncio's (a handle per call, a byte through the self-pipe, two ``recv``
and an exception to read it back). Here a call is queued, and the loop is woken
only when no drain is already due, by one ``eventfd`` write that the loop's reader clears with one read;
calls that come meanwhile (a burst, or the frames of cameras that arrive together) ride along. No call
waits longer than before: each runs in the first drain after it was queued, in the order queued.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import time
import weakref
from collections.abc import Callable

log = logging.getLogger(__name__)


class LoopInbox:
    """The calls queued for one event loop. ``call`` from any thread; the calls run on the loop.

    Made on the loop (it registers its reader there)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)  # the registry below is keyed weakly by the loop: no cycle back to it
        self._calls: collections.deque[tuple[Callable[..., None], tuple[object, ...]]] = collections.deque()
        # A wake-up is on its way and the drain it starts has not cleared this yet. Set by the queuing
        # threads before they wake the loop; the drain clears it after it has consumed the wake-up and
        # before it takes anything: a call queued before the clear is taken by that drain, one queued after
        # it sees the flag down and wakes the loop again (two threads may both do so: a spare wake-up).
        self._due = False
        self._lazy_since: float | None = None  # when the oldest call that woke nobody was queued
        self._fd = -1
        try:
            fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        except (AttributeError, OSError):  # not Linux: asyncio's own wake-up
            return
        try:
            loop.add_reader(fd, self._drain)
        except NotImplementedError:  # a loop without add_reader (the proactor)
            os.close(fd)
            return
        self._fd = fd
        weakref.finalize(loop, os.close, fd)

    def call(self, callback: Callable[..., None], *args: object) -> None:
        """Queue ``callback(*args)`` for the loop. Raises RuntimeError once the loop is closed."""
        loop = self._loop()
        if loop is None or loop.is_closed():
            raise RuntimeError("the event loop is closed")
        self._calls.append((callback, args))
        self._wake(loop)

    def call_within(self, within_s: float, callback: Callable[..., None], *args: object) -> None:
        """Queue a call that may wait up to about ``within_s`` for a wake-up someone else sends: the loop is
        woken only once the oldest such call is that old (checked at each call), or by ``call``, or by
        ``drain`` from the loop's own timers. For packets that no consumer needs at once (a recorder that
        writes once a fragment): a third of the wake-ups at 30 fps with 0.1 s."""
        loop = self._loop()
        if loop is None or loop.is_closed():
            raise RuntimeError("the event loop is closed")
        self._calls.append((callback, args))
        if self._due:
            return
        now = time.monotonic()
        since = self._lazy_since
        if since is None:
            self._lazy_since = now
        elif now - since >= within_s:
            self._wake(loop)

    def _wake(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._due:
            return
        self._due = True
        if self._fd >= 0:
            os.eventfd_write(self._fd, 1)
        else:
            loop.call_soon_threadsafe(self._drain)

    def drain(self) -> None:
        """On the loop: run what is queued now (a timer that fires anyway takes the lazy calls along)."""
        self._lazy_since = None
        calls = self._calls
        while calls:
            callback, args = calls.popleft()
            try:
                callback(*args)
            except Exception:  # as the loop itself would: say so, and run the rest
                log.exception("callback %r from an ingest thread failed", callback)

    def _drain(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(BlockingIOError):
                os.eventfd_read(self._fd)  # first: a wake-up sent after this read wakes the loop again
        self._due = False
        self.drain()


_inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopInbox] = weakref.WeakKeyDictionary()


def inbox_for(loop: asyncio.AbstractEventLoop) -> LoopInbox:
    """The one inbox of ``loop``, shared by every source on it (called on the loop)."""
    inbox = _inboxes.get(loop)
    if inbox is None:
        inbox = _inboxes[loop] = LoopInbox(loop)
    return inbox
