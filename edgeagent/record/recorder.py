"""The recorder of one camera: a hub consumer that remuxes packets into fragmented-MP4 segments.

The event loop only queues packets in the hub's bounded subscription (drop-oldest, drops counted); a
writer thread per camera takes them in batches and does all PyAV, file and index work. Whatever the
stream does (reconnects, timestamp jumps, a disk that fills up) the current segment is closed cleanly
and the hole between two segments is recorded as a gap with its reason; recording starts again on the
next keyframe.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from edgeagent.camera.hub import CameraHub, Subscription
from edgeagent.camera.packet import Packet, StreamInfo
from edgeagent.record.index import RecordingIndex
from edgeagent.record.model import GapReason, Segment
from edgeagent.record.retention import Retention
from edgeagent.record.segment_names import segment_path
from edgeagent.record.settings import RecordingSection
from edgeagent.record.timeline import Timeline
from edgeagent.record.writer import FRAGMENT_S, DiskFullError, SegmentWriter

log = logging.getLogger(__name__)

QUEUE_PACKETS = 600  # the hub subscription's bound: about 20 s at 30 fps, room for a slow disk's hiccup
BATCH_INTERVAL_S = 0.1  # between looks at the queue while no segment is open (waiting for a keyframe)
FRAGMENT_SLACK_S = 0.1  # after a fragment is due: the frame that completes it, and one after (held back)
MAX_WAIT_S = 1.0
MAX_STEP_S = 5.0  # a frame-to-frame step larger than this is a jump of the camera's clock


class _Marker(enum.Enum):
    OFFLINE = "offline"
    STOP = "stop"




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
        self.stop_reason = GapReason.AGENT_STOPPED  # the gap a stop leaves (a camera taken out: recording disabled)
        self.reason: str | None = None
        self.dropped = 0  # packets the hub dropped from this recorder's subscription (drop-oldest)
        self.bytes_written = 0
        self.segments_written = 0
        self.started_at = time.monotonic()
        self._seen_drops = 0
        self._markers: list[tuple[int, _Marker]] = []  # (packets delivered before it, marker): from the loop
        self._subscription: Subscription | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
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
        # The segment being written up to its last whole fragment, for readers (``edgeagent.record.growing``):
        # a new immutable object after each fragment, read by other threads without a lock.
        self.growing: Segment | None = None

    # -- event-loop side --------------------------------------------------------------------------

    def start(self) -> None:
        self._running = True
        # Not prompt: the writer takes packets once a fragment, so the loop need not wake for each one.
        self._subscription = self.hub.subscribe(f"recorder-{self.camera}", maxsize=QUEUE_PACKETS, prompt=False)
        self.hub.on_stream_change(self._on_stream_change)
        self._thread = threading.Thread(target=self._run, name=f"record-{self.camera}", daemon=True)
        self._thread.start()

    def on_change(self, listener: Callable[[Recorder], None]) -> None:
        """``listener(recorder)`` runs in the writer thread when state or reason change."""
        self._listeners.append(listener)

    async def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 30)
        if self._subscription is not None:
            self._subscription.close()

    def _on_stream_change(self, stream: StreamInfo | None) -> None:
        """On the loop: the connection ended. The writer acts on it after the packets that came before."""
        subscription = self._subscription
        if stream is None and self._running and subscription is not None:
            self._markers.append((subscription.delivered + subscription.qsize(), _Marker.OFFLINE))

    def _take(self) -> list[Packet | _Marker | GapReason]:
        """What the hub queued for us since the last look, markers in their place. The subscription's deque
        is shared with the loop: appends and pops on either side are atomic (CPython's deque); nothing
        else of it is touched here."""
        subscription = self._subscription
        assert subscription is not None
        batch: list[Packet | _Marker | GapReason] = []
        if subscription.dropped != self._seen_drops:
            self.dropped += subscription.dropped - self._seen_drops
            self._seen_drops = subscription.dropped
            batch.append(GapReason.RECORDER_OVERLOADED)
        while True:
            if self._markers and self._markers[0][0] <= subscription.delivered:
                batch.append(self._markers.pop(0)[1])
                continue
            packet = subscription.get_nowait()
            if packet is None:
                break
            batch.append(packet)
        while self._markers:  # what came before them was dropped: they are due all the same
            batch.append(self._markers.pop(0)[1])
        return batch

    # -- writer thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        self._prev_sha = self.index.last_sha256(self.camera)
        self._gap_open = self.index.has_open_gap(self.camera)
        self._timeline.last_end = self.index.camera_totals(self.camera)[1]
        while True:
            stopping = self._stopping.wait(self._wait_s())
            batch = self._take()
            for item in batch:
                self._process(item)
            if stopping:
                self._process(_Marker.STOP)
                return
            if not batch:
                self._idle()

    def _wait_s(self) -> float:
        """How long to let packets gather. While a segment is written, until the fragment being filled is due
        (the packet that completes it makes the muxer write it out): about one wake-up per fragment, not
        one per frame, and no fragment reaches the disk later for it."""
        writer = self._writer
        if writer is None:
            return BATCH_INTERVAL_S
        due = writer.fragment_arrival + FRAGMENT_S + FRAGMENT_SLACK_S - time.monotonic()
        return min(MAX_WAIT_S, max(BATCH_INTERVAL_S / 2, due))

    def _process(self, item: Packet | _Marker | GapReason) -> None:
        try:
            if item is _Marker.STOP:
                self._interrupt(self.stop_reason)
                self._set_state("off", self.stop_reason.value)
            elif item is _Marker.OFFLINE:
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
        if packet.keyframe and (dts - writer.first_dts) * writer.tick_s >= self.settings.segment_s:
            end = self._close(next_dts=dts)
            self._begin(packet, contiguous=True, previous_end=end)
            return
        try:
            fragments = writer.fragments
            writer.push(packet)
            self._last = packet
            if writer.fragments != fragments:
                self.growing = writer.synced_segment(self.camera, self._prev_sha)
        except DiskFullError:
            self._interrupt(GapReason.DISK_FULL)
            self._pause()

    def _jumped(self, packet: Packet, dts: int) -> bool:
        last = self._last
        if last is None or (last_dts := _dts(last)) is None:
            return False
        step = (dts - last_dts) * packet.stream.tick_s
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
            self.growing = None
            writer.path.unlink(missing_ok=True)
            self._db(lambda: self.index.delete_segment(writer.path))
            return None
        stream = writer.stream_info
        segment = Segment(self.camera, writer.path, writer.start, end, size, stream.codec, stream.width,
                          stream.height, digest, self._prev_sha)  # fmt: skip
        self._db(lambda: self.index.close_segment(segment))
        self.growing = None  # after the index has it closed: a reader that looks in between finds it twice
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
        self._last = self.growing = None  # also when closing failed half-way: nothing stale is offered to readers
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
