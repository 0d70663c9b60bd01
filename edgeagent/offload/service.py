"""The offloader: one task that takes the queue's rows in order, uploads each under the cap, and puts
failed ones back with doubling waits. It queues new segments every ``scan_s`` and, through a retention
hook, just before retention deletes anything (so no segment that must go is deleted before it is queued).

Wiring (the integrator): ``offloader = await start_offload(config.offload, recording_service,
config.agent.id)`` after the recording service started; ``await offloader.stop()`` before it stops;
``offloader.stats().to_json()`` and ``offloader.alarms()`` for health, ``edgeagent.publish.offload_metrics``
for /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeagent.offload.errors import CredentialsRefused, LocalFileAltered, UploadError
from edgeagent.offload.exports import SPOOL_DIR, ExportSpool
from edgeagent.offload.pacer import TokenBucket
from edgeagent.offload.queue import Item, OffloadQueue
from edgeagent.offload.settings import OffloadSection
from edgeagent.record.index import now_utc
from edgeagent.record.writer import file_sha256

if TYPE_CHECKING:
    from edgeagent.offload.s3 import S3Uploader

log = logging.getLogger(__name__)

# A stop is bounded: systemd's stop and a reload never wait on object storage (a client's close was seen
# to hang once in the tests' SeaweedFS after refused uploads).
STOP_S = 5.0
RATE_WINDOW_S = 30.0  # throughput is measured over the uploads of about this long


@dataclass(frozen=True)
class OffloadStats:
    state: str  # idle, uploading, retrying, or error (credentials refused)
    queued: int  # files waiting
    queued_bytes: int
    uploaded: int  # files uploaded and verified since start
    uploaded_bytes: int
    failures: int  # failed attempts since start
    last_error: str | None
    last_upload: datetime | None
    throughput_kbps: float  # over the recent uploads
    max_kbps: float | None
    export_spool_bytes: int  # HTTP exports kept on the recording disk for upload
    exports_not_queued: dict[str, int]  # HTTP exports not kept for upload, by reason (spool full, disk short...)

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["last_upload"] = None if self.last_upload is None else self.last_upload.isoformat()
        document["throughput_kbps"] = round(self.throughput_kbps, 1)
        document["exports_not_queued"] = dict(self.exports_not_queued)
        return document


class Offloader:
    def __init__(self, section: OffloadSection, index_path: Path, recording_dir: Path, agent_id: str,
                 min_free: Callable[[int], int] | None = None) -> None:  # fmt: skip
        self.section = section
        self.recording_dir = recording_dir
        self.agent_id = agent_id
        self.queue = OffloadQueue(index_path)
        self.pacer = TokenBucket(section.max_kbps * 1000 / 8 if section.max_kbps else None)
        self.state = "idle"
        self.uploaded = 0
        self.uploaded_bytes = 0
        self.failures = 0
        self.last_error: str | None = None
        self.last_upload: datetime | None = None
        self._recent: list[tuple[float, float, int]] = []  # (started, ended, bytes) of recent uploads
        self._pending = (0, 0)
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        # Exports made over HTTP are copied here and queued (blocking: the constructor runs in a thread),
        # bounded, and never below the recording's min_free (``min_free(total)``: its bytes on that disk).
        self.exports = ExportSpool(recording_dir / SPOOL_DIR, self.queue, self.export_key, self.wake_threadsafe,
                                   section.export_spool_bytes, min_free)  # fmt: skip
        self.exports.recover()

    # -- what goes where --------------------------------------------------------------------------

    def key_for(self, item: Item) -> str:
        if item.key is not None:
            return item.key
        try:
            relative = item.path.relative_to(self.recording_dir).as_posix()  # <camera>/<day>/<file>
        except ValueError:
            relative = item.path.name
        return f"{self._prefix()}{self.agent_id}/{relative}"

    def _prefix(self) -> str:
        prefix = self.section.prefix.strip("/")
        return prefix + "/" if prefix else ""

    def enqueue_segments(self) -> int:
        """Blocking: queue what must go (also the retention hook, in its thread)."""
        return self.queue.enqueue_segments(self.section.segments)

    def export_key(self, name: str) -> str:
        return f"{self._prefix()}{self.agent_id}/exports/{name}"

    async def enqueue_export(self, path: Path, name: str | None = None) -> str:
        """Queue an export zip (or any file) under ``<prefix>/<agent>/exports/<name>``; returns the key.
        The file must stay until it is uploaded (``queue.is_done``). Exports made over HTTP are queued by
        ``exports`` (the routes' ``ExportKeeper``)."""
        size = (await asyncio.to_thread(path.stat)).st_size
        sha = await asyncio.to_thread(file_sha256, path)
        key = self.export_key(name or path.name)
        absolute = await asyncio.to_thread(path.absolute)
        await asyncio.to_thread(self.queue.enqueue_file, absolute, key, size, sha)
        self._wake.set()
        return key

    # -- the task ---------------------------------------------------------------------------------

    def start(self) -> None:
        # Its own task, not the agent's BackgroundTasks: stop() must end it before the queue closes.
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self.run(), name="offload")

    def wake_threadsafe(self) -> None:
        """Look at the queue now (from any thread: a new export was queued)."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                self._loop.call_soon_threadsafe(self._wake.set)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=STOP_S)
            if not done:
                log.warning("offload: the uploader did not stop within %.0f s; left to end with the agent", STOP_S)
        await asyncio.to_thread(self.queue.close)

    async def run(self) -> None:
        """Until cancelled; a failure outside one upload (the client cannot be made) is retried too."""
        wait = self.section.retry_initial_s
        while True:
            try:
                await self._run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                self.state, self.last_error = "error", f"offload stopped: {type(exc).__name__}: {str(exc)[:200]}"
                log.exception("offload: the uploader failed; starting again in %.0f s", wait)
                await asyncio.sleep(wait)
                wait = min(self.section.retry_max_s, wait * 2)

    async def _run(self) -> None:
        # Imported only where offload is configured (aiobotocore is 21 MB), in a thread (reading modules).
        s3 = await asyncio.to_thread(importlib.import_module, "edgeagent.offload.s3")
        uploader: S3Uploader
        async with s3.S3Uploader(self.section, self.pacer) as uploader:
            next_scan = 0.0
            while True:
                if time.monotonic() >= next_scan:
                    await asyncio.to_thread(self.enqueue_segments)
                    next_scan = time.monotonic() + self.section.scan_s
                self._wake.clear()  # before looking: a file queued from now on wakes the sleep below
                item = await asyncio.to_thread(self.queue.next_due)
                self._pending = await asyncio.to_thread(self.queue.pending)
                if item is None:
                    if self.state == "uploading":
                        self.state = "idle"
                    await self._sleep(next_scan)
                    continue
                await self._upload(uploader, item)

    async def _sleep(self, next_scan: float) -> None:
        retry = await asyncio.to_thread(self.queue.next_retry_s)
        wait = max(0.0, next_scan - time.monotonic())
        if retry is not None:
            wait = min(wait, retry)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), wait)

    async def _upload(self, uploader: S3Uploader, item: Item) -> None:
        if not await asyncio.to_thread(item.path.exists):
            log.warning("offload: %s is gone before its upload; dropped from the queue", item.path)
            await asyncio.to_thread(self.queue.drop, item)
            return
        key = self.key_for(item)
        if self.state != "error":
            self.state = "uploading" if item.attempts == 0 else "retrying"
        started = time.monotonic()
        try:
            await uploader.upload(item.path, key, item.bytes, item.sha256)
        except UploadError as exc:
            self.failures += 1
            self.last_error = str(exc)
            self.state = "error" if isinstance(exc, CredentialsRefused | LocalFileAltered) else "retrying"
            wait = await asyncio.to_thread(self.queue.failed, item, str(exc), self.section.retry_initial_s,
                                           self.section.retry_max_s)  # fmt: skip
            log.warning("offload: %s failed (attempt %d, next in %.0f s): %s", key, item.attempts + 1, wait, exc)
            return
        ended = time.monotonic()
        await asyncio.to_thread(self.queue.done, item)
        if item.kind == "export" and self.exports.owns(item.path):  # our copy: in object storage now
            await asyncio.to_thread(item.path.unlink, True)
            self.exports.uploaded(item.bytes)
        self.uploaded += 1
        self.uploaded_bytes += item.bytes
        self.last_upload = now_utc()
        self.last_error = None
        self.state = "uploading"
        self._recent = [r for r in self._recent if r[1] > ended - RATE_WINDOW_S] + [(started, ended, item.bytes)]
        log.info("offload: %s uploaded (%d bytes, %.1f s)", key, item.bytes, ended - started)

    # -- health -----------------------------------------------------------------------------------

    def throughput_kbps(self) -> float:
        if not self._recent:
            return 0.0
        span = self._recent[-1][1] - self._recent[0][0]
        return sum(r[2] for r in self._recent) * 8 / 1000 / span if span > 0 else 0.0

    def stats(self) -> OffloadStats:
        """Cheap (no disk): the queue figures are those of the task's last look."""
        count, size = self._pending
        return OffloadStats(
            self.state, count, size, self.uploaded, self.uploaded_bytes, self.failures, self.last_error,
            self.last_upload, self.throughput_kbps(), self.section.max_kbps, self.exports.spooled_bytes(),
            dict(self.exports.refused),
        )  # fmt: skip

    def alarms(self) -> list[str]:
        return [f"offload: {self.last_error}"] if self.state == "error" and self.last_error else []


async def start_offload(
    section: OffloadSection,
    recording: Any,
    agent_id: str,
) -> Offloader:
    """Start offloading the recordings of ``recording`` (a started ``RecordingService``)."""
    offloader = await asyncio.to_thread(Offloader, section, recording.index.path, recording.settings.dir, agent_id,
                                        recording.settings.min_free_bytes)  # fmt: skip
    recording.retention.before_delete.append(offloader.enqueue_segments)
    offloader.start()
    return offloader
