"""Cut one fragmented MP4 out of consecutive recorded segments, without re-encoding.

The clip begins with the keyframe at or before ``start``. The frames before ``start`` (decoded, never
shown) are squeezed into one tick each ahead of it, so the first frame shown is the one at ``start`` in
every player: an edit list is the textbook way, but in fragmented MP4 FFmpeg's demuxer ignores it (an
``elst`` written with ``delay_moov`` still played all 1.5 s of pre-roll here), and fragmented is what
lets a browser play the clip while it downloads.

The clip's timeline is the wall clock: clip time 0 is the actual start and a frame recorded at ``t`` sits
at ``t - start``. A gap inside the range stays a gap in time: the last frame before it is held until the
next recorded frame (players show it frozen), so the clip's duration is its actual end minus its start
and every timestamp can be read back to the wall clock. The clip stops early at a segment whose codec or
picture size differs from the first (one MP4 track has one sample description; the recorder's keyframes
carry their parameter sets in-band, so a camera that re-sent them at the same size plays on);
``ClipPlan.end`` says where it ends.

Everything here blocks (PyAV, file reads): run it in a thread.
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any, Protocol

import av
from pydantic import BaseModel, ConfigDict, Field

from edgeagent.record.growing import open_for_reading
from edgeagent.record.model import Segment

MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
FRAGMENT_US = 1_000_000  # about 1 s fragments: the browser gets pictures as soon as one is written
TICKS = 90000
TIME_BASE = Fraction(1, TICKS)
CHUNK_BYTES = 256 * 1024  # the muxer's small writes are gathered before they cross to the event loop
# The segment's moov has everything: probing it for more only delays the first byte.
OPEN_OPTIONS = {"analyzeduration": "0", "probesize": "32", "fpsprobesize": "0"}


class ClipSettings(BaseModel):
    """Limits on what a clip may cover (the HTTP routes fill it from their own settings)."""

    model_config = ConfigDict(extra="forbid")
    max_seconds: float = Field(default=3600.0, gt=0, le=24 * 3600, description="longest clip, in seconds")


class ClipError(Exception):
    status = 400


class NotFound(ClipError):
    status = 404


class TooLong(ClipError):
    status = 413


class Sink(Protocol):
    def write(self, data: bytes) -> object: ...


@dataclass(frozen=True)
class ClipPlan:
    """What a clip of ``[requested_start, requested_end)`` holds: the segments it reads and the recorded
    times it actually covers."""

    camera: str
    requested_start: datetime
    requested_end: datetime
    start: datetime
    end: datetime
    segments: tuple[Segment, ...]

    def expected_bytes(self) -> int:
        """About what the clip weighs: each segment's bytes in the share of its time the clip covers."""
        total = 0
        for segment in self.segments:
            length = (segment.end - segment.start).total_seconds()
            covered = (min(segment.end, self.end) - max(segment.start, self.start)).total_seconds()
            total += segment.bytes if length <= 0 else int(segment.bytes * max(0.0, min(1.0, covered / length)))
        return total


def check_range(start: datetime, end: datetime, settings: ClipSettings) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ClipError("times must carry a time zone (UTC)")
    if end <= start:
        raise ClipError("end must be after start")
    if (end - start).total_seconds() > settings.max_seconds:
        raise TooLong(f"a clip may be at most {settings.max_seconds:g} s long")


def _same_track(a: Segment, b: Segment) -> bool:
    return (a.codec, a.width, a.height) == (b.codec, b.width, b.height)


def plan_clip(
    camera: str, segments: Sequence[Segment], start: datetime, end: datetime, settings: ClipSettings | None = None
) -> ClipPlan:
    """Choose the segments for ``[start, end)`` from the index's answer (any order, any overlap with the
    range). NotFound when nothing recorded falls inside, TooLong over ``settings.max_seconds``."""
    check_range(start, end, settings or ClipSettings())
    chosen = sorted((s for s in segments if s.camera == camera and s.end > start and s.start < end),
                    key=lambda s: s.start)
    if not chosen:
        raise NotFound("nothing was recorded in this range")
    kept = [chosen[0]]
    for segment in chosen[1:]:
        if not _same_track(kept[0], segment):
            break
        kept.append(segment)
    return ClipPlan(camera, start, end, max(start, kept[0].start), min(end, kept[-1].end), tuple(kept))


class HashingWriter:
    """A write-only, unseekable file for PyAV's muxer: gathers bytes into chunks for ``sink`` and hashes
    everything that passes (the export's manifest needs the clip's SHA-256 without reading it again)."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.sha256 = hashlib.sha256()
        self.bytes = 0
        self._buffer = bytearray()

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.sha256.update(view)
        self.bytes += len(view)
        self._buffer += view
        if len(self._buffer) >= CHUNK_BYTES or self.bytes == len(view):
            self.flush()  # the first write (the file's header) goes out at once: the client starts early
        return len(view)

    def flush(self) -> None:
        if self._buffer:
            self.sink.write(bytes(self._buffer))
            self._buffer.clear()


@dataclass(frozen=True)
class ClipResult:
    bytes: int
    sha256: str
    frames: int


def _packets(segment: Segment, seek_s: float = 0.0) -> Generator[tuple[av.Packet, float, Any], None, None]:
    """Every packet of one segment with its wall-clock time in seconds since the epoch; the file's own
    timestamps start where the muxer rebased them, the segment's ``start`` is the first frame's time.

    With ``seek_s`` it starts at the keyframe at or before that many seconds into the segment, or from the
    beginning when the file cannot seek there (a segment still being written has no fragment index, and is
    read only up to its last whole fragment)."""
    with av.open(open_for_reading(segment), "r", format="mp4", options=OPEN_OPTIONS) as container:
        stream = container.streams.video[0]
        time_base = stream.time_base or TIME_BASE
        origin = stream.start_time
        anchor = segment.start.timestamp()
        packets = container.demux(stream)
        if seek_s > 0 and origin is not None:
            try:
                container.seek(origin + int(seek_s / time_base), backward=True, any_frame=False, stream=stream)
                packets = container.demux(stream)
                first = next((p for p in packets if p.dts is not None and p.size), None)
                landed = first is not None and first.is_keyframe and first.pts is not None and \
                    float((first.pts - origin) * time_base) <= seek_s
                if not landed:
                    container.seek(origin, backward=True, any_frame=False, stream=stream)
                    packets = container.demux(stream)
                elif first is not None and first.pts is not None:
                    yield first, anchor + float((first.pts - origin) * time_base), stream
            except (av.error.FFmpegError, StopIteration):
                container.seek(origin, backward=True, any_frame=False, stream=stream)
                packets = container.demux(stream)
        for packet in packets:
            if packet.dts is None or packet.size == 0:
                continue
            pts = packet.pts if packet.pts is not None else packet.dts
            if origin is None:
                origin = pts
            yield packet, anchor + float((pts - origin) * time_base), stream


class _Cutter:
    """Rewrites packet times onto the clip's timeline (90 kHz ticks from the actual start)."""

    def __init__(self, output: Any, start_s: float, end_s: float) -> None:
        self.output = output
        self.start_s = start_s
        self.end_s = end_s
        self.tail = 0
        self.stream: Any = None
        self.preroll: list[av.Packet] = []
        self.started = False
        self.shift = 0
        self.last_dts = -1
        self.frames = 0

    def _mux(self, packet: av.Packet, pts: int, dts: int) -> None:
        packet.stream = self.stream
        packet.time_base = TIME_BASE
        packet.pts, packet.dts = pts, dts
        self.output.mux(packet)
        self.last_dts = dts
        self.frames += 1

    def add(self, packet: av.Packet, wall: float, in_stream: Any) -> None:
        if not self.started:
            if packet.is_keyframe:
                self.preroll = []
            if wall < self.start_s:
                if packet.is_keyframe or self.preroll:
                    self.preroll.append(packet)
                return
            if not (self.preroll or packet.is_keyframe):
                return  # no keyframe yet to decode from
            self.started = True
            # The frames before ``start`` take one tick each, so that ``start`` lands at tick len(preroll).
            for index, early in enumerate(self.preroll):
                self._mux(early, index, index)
            self.shift = len(self.preroll)
        ticks = self.shift + round((wall - self.start_s) * TICKS)
        dts = ticks
        if packet.pts is not None and packet.dts is not None and packet.dts != packet.pts:
            dts = ticks - round(float((packet.pts - packet.dts) * in_stream.time_base) * TICKS)  # B-frames
        dts = max(dts, self.last_dts + 1)
        if wall >= self.end_s:
            # Decoded before ``end`` but shown after it (a B-frame's forward reference): one tick each at the
            # end, like the pre-roll at the start, so the clip still ends at ``end``.
            ticks = self.shift + round((self.end_s - self.start_s) * TICKS) + self.tail
            self.tail += 1
        self._mux(packet, max(ticks, dts), dts)


def _decode_wall(packet: av.Packet, wall: float, stream: Any) -> float:
    if packet.pts is None or packet.dts is None or packet.pts == packet.dts:
        return wall
    return wall - float((packet.pts - packet.dts) * (stream.time_base or TIME_BASE))


def write_clip(plan: ClipPlan, sink: Sink) -> ClipResult:
    """Mux the clip of ``plan`` into ``sink`` as fragmented MP4, chunk by chunk, as it is cut."""
    writer = HashingWriter(sink)
    end_s = plan.end.timestamp()
    output = av.open(writer, "w", format="mp4", options={"movflags": MOVFLAGS, "frag_duration": str(FRAGMENT_US)})
    cutter = _Cutter(output, plan.start.timestamp(), end_s)
    try:
        for number, segment in enumerate(plan.segments):
            offset = (plan.start - segment.start).total_seconds() if number == 0 else 0.0
            packets = _packets(segment, max(0.0, offset))
            try:
                for packet, wall, in_stream in packets:
                    if _decode_wall(packet, wall, in_stream) >= end_s:
                        break  # by decode time: a B-frame shown before ``end`` keeps the frame it refers to
                    if cutter.stream is None:
                        cutter.stream = output.add_stream_from_template(in_stream)
                        if segment.codec == "hevc":
                            cutter.stream.codec_context.codec_tag = "hvc1"  # what browsers playing H.265 want
                        cutter.stream.time_base = TIME_BASE
                    cutter.add(packet, wall, in_stream)
                else:
                    continue
                break
            finally:
                packets.close()
        if cutter.frames == 0:
            raise NotFound("no frame of the recording falls in this range")
    finally:
        try:
            output.close()
        except av.error.FFmpegError:
            pass
    writer.flush()
    return ClipResult(writer.bytes, writer.sha256.hexdigest(), cutter.frames)


def clip_seconds(plan: ClipPlan) -> float:
    return (plan.end - plan.start) / timedelta(seconds=1)
