"""The recorder of one camera: a hub consumer that remuxes packets into fragmented-MP4 segments.

The event loop only moves packets from the hub's subscription into a bounded queue; a writer thread per
camera does all PyAV, file and index work. Whatever the stream does (reconnects, timestamp jumps, a disk
that fills up) the current segment is closed cleanly and the hole between two segments is recorded as a
gap with its reason; recording starts again on the next keyframe.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import errno
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from edgeagent.camera.hub import CameraHub, Subscription
from edgeagent.camera.packet import Packet, StreamInfo
from edgeagent.record.index import RecordingIndex
from edgeagent.record.model import GapReason, Segment
from edgeagent.record.retention import Retention
from edgeagent.record.settings import RecordingSection
from edgeagent.record.timeline import Timeline
from edgeagent.record.writer import DiskFullError, SegmentWriter

log = logging.getLogger(__name__)

QUEUE_PACKETS = 600  # about 20 s at 30 fps: room for a slow disk's hiccup
PUMP_INTERVAL_S = 0.1
MAX_STEP_S = 5.0  # a frame-to-frame step larger than this is a jump of the camera's clock


class _Marker(enum.Enum):
    OFFLINE = "offline"
    STOP = "stop"


def segment_path(root: Path, camera: str, start: datetime) -> Path:
    return root / camera / start.strftime("%Y-%m-%d") / f"{camera}-{start.strftime('%Y%m%dT%H%M%S.%fZ')}.mp4"


def _dts(packet: Packet) -> int | None:
    return packet.dts if packet.dts is not None else packet.pts


class Recorder:
    """Records one camera. ``start()`` on the event loop, ``await stop()`` to close the segment cleanly."""

    def __init__(
        self,
        camera: str,
        hub: CameraHub,
        index: RecordingIndex,
        retention: Retention,
        settings: RecordingSection,
        offline_reason: Callable[[], GapReason] | None = None,
    ) -> None:
        self.camera = camera
        self.hub = hub
        self.index = index
        self.retention = retention
        self.settings = settings
        self.offline_reason = offline_reason or (lambda: GapReason.CAMERA_OFFLINE)
        self.state = "off"  # recording, paused or off
        self.reason: str | None = None
        self.dropped = 0  # packets this recorder lost (hub subscription plus its own queue)
        self.bytes_written = 0
        self.segments_written = 0
        self.started_at = time.monotonic()
        self._queue: collections.deque[Packet | _Marker | GapReason] = collections.deque()
        self._ready = threading.Condition()
        self._lost = False
        self._seen_drops = 0
        self._subscription: Subscription | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._running = False
        # writer-thread state
        self._writer: SegmentWriter | None = None
        self._last: Packet | None = None
        self._prev_sha: str | None = None
        self._gap_open = False
        self._paused = False
        self._listeners: list[Callable[[Recorder], None]] = []
        self._deferred: list[Callable[[], object]] = []
        self._timeline = Timeline(camera, None)

    # -- event-loop side --------------------------------------------------------------------------

    def start(self) -> None:
        self._running = True
        self._subscription = self.hub.subscribe(f"recorder-{self.camera}", maxsize=QUEUE_PACKETS)
        self.hub.on_stream_change(self._on_stream_change)
        self._thread = threading.Thread(target=self._run, name=f"record-{self.camera}", daemon=True)
        self._thread.start()
        self._pump_task = asyncio.get_running_loop().create_task(self._pump(), name=f"record-pump-{self.camera}")

    def on_change(self, listener: Callable[[Recorder], None]) -> None:
        """``listener(recorder)`` runs in the writer thread when state or reason change."""
        self._listeners.append(listener)

    async def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        if self._subscription is not None:
            self._drain_subscription()
            self._subscription.close()
        if self._pump_task is not None:
            self._pump_task.cancel()
        self._put(_Marker.STOP)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 30)

    async def _pump(self) -> None:
        """Moves packets to the writer in batches: one wake-up of its thread per batch, not per frame."""
        while self._subscription is not None and not self._subscription.closed:
            await asyncio.sleep(PUMP_INTERVAL_S)
            self._drain_subscription()

    def _drain_subscription(self) -> None:
        subscription = self._subscription
        if subscription is None:
            return
        batch: list[Packet | _Marker | GapReason] = []
        if subscription.dropped != self._seen_drops:
            self.dropped += subscription.dropped - self._seen_drops
            self._seen_drops = subscription.dropped
            batch.append(GapReason.RECORDER_OVERLOADED)
        while (packet := subscription.get_nowait()) is not None:
            batch.append(packet)
        if batch:
            self._put(*batch)

    def _on_stream_change(self, stream: StreamInfo | None) -> None:
        if stream is None and self._running:
            self._drain_subscription()  # what arrived before the end belongs before the marker
            self._put(_Marker.OFFLINE)

    def _put(self, *items: Packet | _Marker | GapReason) -> None:
        with self._ready:
            for item in items:
                if len(self._queue) >= QUEUE_PACKETS and isinstance(item, Packet):
                    self._queue.popleft()
                    self.dropped += 1
                    self._lost = True
                self._queue.append(item)
            self._ready.notify()

    # -- writer thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        self._prev_sha = self.index.last_sha256(self.camera)
        self._gap_open = self.index.has_open_gap(self.camera)
        self._timeline.last_end = self.index.camera_totals(self.camera)[1]
        while True:
            with self._ready:
                if not self._queue:
                    self._ready.wait(1.0)
                item = self._queue.popleft() if self._queue else None
                lost, self._lost = self._lost, False
            if item is None:
                self._idle()  # outside the lock: the event loop must never wait for the disk
                continue
            try:
                if lost:
                    self._interrupt(GapReason.RECORDER_OVERLOADED)
                if item is _Marker.STOP:
                    self._interrupt(GapReason.AGENT_STOPPED)
                    self._set_state("off", GapReason.AGENT_STOPPED.value)
                    return
                if item is _Marker.OFFLINE:
                    self._interrupt(self.offline_reason())
                elif isinstance(item, GapReason):
                    self._interrupt(item)
                else:
                    self._handle(item)
            except Exception:  # the recorder must outlive anything one packet or one disk can do
                log.exception("camera %s: recording failed; starting again at the next keyframe", self.camera)
                self._abandon()

    def _idle(self) -> None:
        """No packet for a second: the disk may have filled meanwhile."""
        try:
            if self._writer is not None and self.retention.short:
                self._interrupt(GapReason.DISK_FULL)
                self._pause()
        except Exception:
            log.exception("camera %s: recording failed while idle", self.camera)
            self._abandon()

    def _handle(self, packet: Packet) -> None:
        dts = _dts(packet)
        if dts is None:
            return
        writer = self._writer
        if writer is not None:
            if packet.stream is not writer.stream_info:
                self._interrupt(self.offline_reason())  # a reconnect we were not told about
            elif self._jumped(packet, dts):
                self._interrupt(GapReason.TIMESTAMP_JUMP)
            elif self.retention.short:
                self._interrupt(GapReason.DISK_FULL)
                self._pause()
        writer = self._writer
        if writer is None:
            if packet.keyframe:
                self._begin(packet, contiguous=False)
            return
        if packet.keyframe and float((dts - writer.first_dts) * writer.time_base) >= self.settings.segment_s:
            end = self._close(next_dts=dts)
            self._begin(packet, contiguous=True, previous_end=end)
            return
        try:
            writer.push(packet)
            self._last = packet
        except DiskFullError:
            self._interrupt(GapReason.DISK_FULL)
            self._pause()

    def _jumped(self, packet: Packet, dts: int) -> bool:
        last = self._last
        if last is None or (last_dts := _dts(last)) is None:
            return False
        step = float((dts - last_dts) * packet.stream.time_base)
        return step <= 0 or step > MAX_STEP_S

    def _begin(self, packet: Packet, contiguous: bool, previous_end: datetime | None = None) -> None:
        short = self.retention.check()  # before each new segment: make room first
        if short or (self._paused and not self.retention.can_resume()):
            self._pause()
            return
        start = self._timeline.start_of(packet, previous_end if contiguous else None)
        path = segment_path(self.settings.dir, self.camera, start)
        stream = packet.stream
        self._db(lambda: self.index.open_segment(self.camera, path, start, stream.codec, stream.width, stream.height))
        try:
            self._writer = SegmentWriter(path, packet, start)
        except ValueError as exc:  # no parameter sets yet: wait for a keyframe that has them
            log.warning("camera %s: cannot start a segment: %s", self.camera, exc)
            self._db(lambda: self.index.delete_segment(path))
            return
        except OSError as exc:
            self._writer = None
            self._db(lambda: self.index.delete_segment(path))
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                self._pause()
                return
            raise
        self._last = packet
        self._paused = False
        if self._gap_open:
            self._db(lambda: self.index.close_gaps(self.camera, start))
            self._gap_open = False
        self._set_state("recording", None)

    def _close(self, next_dts: int | None = None) -> datetime | None:
        writer, self._writer = self._writer, None
        if writer is None:
            return None
        size, end, digest = writer.close(next_dts)
        self.bytes_written += size
        self._db(lambda: self.index.add_written(size))
        if end <= writer.start:  # nothing playable in it
            writer.path.unlink(missing_ok=True)
            self._db(lambda: self.index.delete_segment(writer.path))
            return None
        stream = writer.stream_info
        segment = Segment(self.camera, writer.path, writer.start, end, size, stream.codec, stream.width,
                          stream.height, digest, self._prev_sha)  # fmt: skip
        self._db(lambda: self.index.close_segment(segment))
        self._prev_sha = digest
        self._timeline.last_end = end
        self.segments_written += 1
        return end

    def _interrupt(self, reason: GapReason) -> None:
        """Close what is being written; the time from its end until the next segment is a gap."""
        end = self._close()
        self._last = None
        if not self._gap_open:
            gap_start = end or datetime.now(UTC)
            self._db(lambda: self.index.add_gap(self.camera, gap_start, None, reason))
            self._gap_open = True
        if reason != GapReason.AGENT_STOPPED:
            self._set_state("paused", reason.value)

    def _pause(self) -> None:
        if not self._gap_open:
            gap_start = self._timeline.last_end or datetime.now(UTC)  # a pause at a segment boundary starts there
            self._db(lambda: self.index.add_gap(self.camera, gap_start, None, GapReason.DISK_FULL))
            self._gap_open = True
        if not self._paused:
            log.warning("camera %s: recording paused: disk full (only locked video left to delete)", self.camera)
        self._paused = True
        self._set_state("paused", GapReason.DISK_FULL.value)

    def _abandon(self) -> None:
        writer, self._writer = self._writer, None
        self._last = None
        if writer is not None:
            try:
                self._writer = writer
                self._interrupt(GapReason.STALL)
            except Exception:
                self._writer = None
                log.exception("camera %s: could not close the segment; repair will at the next start", self.camera)

    def _db(self, action: Callable[[], object]) -> None:
        """Write to the index, in order; on a full disk keep the writes and do them once there is room (the
        files are the truth, and a crash meanwhile is repaired from them)."""
        self._deferred.append(action)
        while self._deferred:
            try:
                self._deferred[0]()
            except sqlite3.OperationalError as exc:
                if len(self._deferred) == 1:
                    log.warning("camera %s: index not updated (%s); will retry", self.camera, exc)
                return
            self._deferred.pop(0)

    def _set_state(self, state: str, reason: str | None) -> None:
        if (state, reason) == (self.state, self.reason):
            return
        self.state, self.reason = state, reason
        for listener in tuple(self._listeners):
            try:
                listener(self)
            except Exception:
                log.exception("camera %s: recording listener failed", self.camera)
