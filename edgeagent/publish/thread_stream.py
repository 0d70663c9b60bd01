"""Stream what a worker thread writes (a clip, an export) as an HTTP response body, with back-pressure.

The thread writes into a bounded queue on the event loop and waits while the client is slow; when the
client goes away the thread's next write raises ``ClientGone`` and the muxer unwinds. The response is only
started with the first chunk, so a failure before it (nothing found, an altered segment) still gets its
own status and a one-line reason.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from edgeagent.record.clip import ClipError

log = logging.getLogger(__name__)

QUEUE_CHUNKS = 8  # at most this many chunks (256 kB each) wait for a slow client
WRITE_WAIT_S = 1.0  # how often a blocked writer looks whether the client left


class ClientGone(Exception):
    pass


_DONE = object()


class _ThreadSink:
    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any], gone: threading.Event) -> None:
        self.loop, self.queue, self.gone = loop, queue, gone

    def write(self, data: bytes) -> int:
        if self.gone.is_set():
            raise ClientGone()
        future = asyncio.run_coroutine_threadsafe(self.queue.put(bytes(data)), self.loop)
        while True:
            try:
                future.result(timeout=WRITE_WAIT_S)
                return len(data)
            except concurrent.futures.TimeoutError:
                if self.gone.is_set():
                    future.cancel()
                    raise ClientGone() from None


def one_line(status: int, reason: str) -> web.Response:
    return web.Response(status=status, text=reason.splitlines()[0] + "\n", content_type="text/plain")


@dataclass
class StreamCounts:
    started: int = 0
    completed: int = 0
    client_left: int = 0  # the client went away mid-body and the job was stopped
    failed: int = 0


async def stream_from_thread(request: web.Request, job: Callable[[Any], object], headers: Mapping[str, str],
                             counts: StreamCounts | None = None) -> web.StreamResponse:
    """Run ``job(sink)`` in a thread and send what it writes to ``sink`` as the body."""
    counts = counts if counts is not None else StreamCounts()
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=QUEUE_CHUNKS)
    gone = threading.Event()
    sink = _ThreadSink(loop, queue, gone)

    def run() -> None:
        outcome: Any = _DONE
        try:
            job(sink)
        except ClientGone:
            return
        except Exception as exc:  # handed to the event loop, which answers or aborts with it
            outcome = exc
        try:
            asyncio.run_coroutine_threadsafe(queue.put(outcome), loop).result(timeout=30)
        except (concurrent.futures.TimeoutError, RuntimeError, concurrent.futures.CancelledError):
            pass

    worker = loop.run_in_executor(None, run)
    response: web.StreamResponse | None = None
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                counts.failed += 1
                if response is None:
                    if isinstance(item, ClipError):
                        return one_line(item.status, str(item))
                    log.error("recordings: %s failed: %s", request.path, item)
                    return one_line(500, f"internal error: {type(item).__name__}")
                log.error("recordings: %s broke off after the response began: %s", request.path, item)
                if request.transport is not None:
                    request.transport.close()  # the client sees a truncated body
                return response
            try:
                if response is None:
                    response = web.StreamResponse(headers=dict(headers))
                    await response.prepare(request)
                    counts.started += 1
                await response.write(item)
            except ConnectionError:
                counts.client_left += 1
                assert response is not None
                return response
        if response is None:  # the job wrote nothing and did not fail
            return one_line(500, "internal error: empty response")
        await response.write_eof()
        counts.completed += 1
        return response
    except asyncio.CancelledError:  # aiohttp cancels the handler when the client disconnects
        counts.client_left += 1
        raise
    finally:
        gone.set()
        while not queue.empty():
            queue.get_nowait()
        if not worker.done():
            # Wakes a writer blocked on the full queue; it then sees ``gone`` and unwinds.
            await asyncio.shield(worker)
