"""Calls from ingest threads to the event loop: in order, with one wake-up of the loop for all that wait.

``loop.call_soon_threadsafe`` for every packet makes a handle and sends a byte through asyncio's self-pipe,
and the loop reads it back: per packet, a system call on each side and often a wake-up of the loop. Here a
call is queued, and the loop is woken only when no drain is already due; calls that come meanwhile (a
burst of packets, or the frames of several cameras that arrive together) ride along with it. No call
waits longer than before: each runs in the first drain the loop runs after it was queued, in order.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import weakref
from collections.abc import Callable

log = logging.getLogger(__name__)


class LoopInbox:
    """The calls queued for one event loop. ``call`` from any thread; the calls run on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)  # the registry below is keyed weakly by the loop: no cycle back to it
        self._calls: collections.deque[tuple[Callable[..., None], tuple[object, ...]]] = collections.deque()
        # A drain is scheduled and has not started yet. Read and set by the queuing threads, cleared by the
        # drain before it takes anything: a call queued before the clear is taken by that drain, one queued
        # after it sees the flag down and schedules the next (two threads may both schedule one: harmless).
        self._due = False

    def call(self, callback: Callable[..., None], *args: object) -> None:
        """Queue ``callback(*args)`` for the loop. Raises RuntimeError once the loop is closed."""
        loop = self._loop()
        if loop is None:
            raise RuntimeError("the event loop is gone")
        self._calls.append((callback, args))
        if self._due and not loop.is_closed():
            return
        self._due = True
        loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._due = False
        calls = self._calls
        while calls:
            callback, args = calls.popleft()
            try:
                callback(*args)
            except Exception:  # as the loop itself would: say so, and run the rest
                log.exception("callback %r from an ingest thread failed", callback)


_inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopInbox] = weakref.WeakKeyDictionary()


def inbox_for(loop: asyncio.AbstractEventLoop) -> LoopInbox:
    """The one inbox of ``loop``, shared by every source on it (called on the loop)."""
    inbox = _inboxes.get(loop)
    if inbox is None:
        inbox = _inboxes[loop] = LoopInbox(loop)
    return inbox
