"""Recorded segments for the read-side tests: real fragmented-MP4 files made by ffmpeg (testsrc2, no
B-frames, a keyframe every second), each with its wall-clock start and a real SHA-256 hash chain, and a
small in-memory index that answers as the recording index does."""

from __future__ import annotations

import hashlib
import itertools
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edgeagent.record.model import Bookmark, Gap, GapReason, Lock, Segment

T0 = datetime(2026, 12, 1, 8, 0, 0, tzinfo=UTC)
FPS = 25
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-bf", "0"]
H265 = ["-c:v", "libx265", "-preset", "ultrafast", "-tag:v", "hev1", "-x265-params", "bframes=2:log-level=error"]


def encode_segments(directory: Path, count: int, seconds: int, width: int = 320, height: int = 180,
                    fps: int = FPS, extra: list[str] | None = None, codec: str = "h264") -> list[Path]:
    """``count`` consecutive fMP4 files of ``seconds`` each, cut from one continuous encode."""
    directory.mkdir(parents=True, exist_ok=True)
    pattern = directory / "part%03d.mp4"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", f"testsrc2=size={width}x{height}:rate={fps}", "-t", str(count * seconds), "-pix_fmt", "yuv420p",
         *(H265 if codec == "hevc" else H264), "-g", str(fps), "-keyint_min", str(fps),
         "-sc_threshold", "0", *(extra or []), "-f", "segment", "-segment_time", str(seconds), "-reset_timestamps", "1",
         "-segment_format", "mp4", "-segment_format_options", f"movflags={MOVFLAGS}", str(pattern)],
        check=True, timeout=120,
    )
    return sorted(directory.glob("part*.mp4"))[:count]


def chain(camera: str, paths: list[Path], starts: list[datetime], seconds: float, width: int = 320,
          height: int = 180) -> list[Segment]:
    """Segments for ``paths`` with their hash chain, as the recorder's index holds them."""
    segments: list[Segment] = []
    previous: str | None = None
    for path, start in zip(paths, starts, strict=True):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        segments.append(Segment(camera, path, start, start + timedelta(seconds=seconds), path.stat().st_size,
                                "h264", width, height, digest, previous))
        previous = digest
    return segments


@dataclass
class FakeIndex:
    """The index's read and lock calls over a fixed list of segments and gaps."""

    segments_: list[Segment] = field(default_factory=list)
    gaps_: list[Gap] = field(default_factory=list)
    locks_: dict[str, Lock] = field(default_factory=dict)
    bookmarks_: list[Bookmark] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def segments(self, camera: str, start: datetime, end: datetime) -> list[Segment]:
        return [s for s in self.segments_ if s.camera == camera and s.end > start and s.start < end]

    def gaps(self, camera: str, start: datetime, end: datetime) -> list[Gap]:
        return [g for g in self.gaps_ if g.camera == camera and g.end > start and g.start < end]

    def spans(self, camera: str, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """Recorded time within [start, end), clipped to it; segments less than 1 s apart make one span."""
        merged: list[list[datetime]] = []
        for segment in sorted(self.segments(camera, start, end), key=lambda s: s.start):
            a, b = max(segment.start, start), min(segment.end, end)
            if merged and (a - merged[-1][1]).total_seconds() <= 1.0:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        return [(a, b) for a, b in merged]

    def add_lock(self, camera: str, start: datetime, end: datetime, reason: str) -> Lock:
        lock = Lock(f"lock{next(self._ids)}", camera, start, end, reason, datetime.now(UTC))
        self.locks_[lock.id] = lock
        return lock

    def locks(self, camera: str) -> list[Lock]:
        return [lock for lock in self.locks_.values() if lock.camera == camera]

    def remove_lock(self, lock_id: str) -> bool:
        return self.locks_.pop(lock_id, None) is not None

    def bookmarks(self, camera: str, start: datetime, end: datetime, limit: int = 1000) -> list[Bookmark]:
        found = sorted((b for b in self.bookmarks_ if b.camera == camera and start <= b.at < end), key=lambda b: b.at)
        return found[:limit]


def recorded(directory: Path, camera: str = "north", count: int = 3, seconds: int = 10,
             gap_before_last_s: float = 0.0, t0: datetime = T0) -> FakeIndex:
    """``count`` segments from ``t0``; with ``gap_before_last_s`` the last one starts that much later, and
    the index holds the gap (camera offline)."""
    paths = encode_segments(directory, count, seconds)
    starts = [t0 + timedelta(seconds=seconds * i) for i in range(count)]
    gaps: list[Gap] = []
    if gap_before_last_s:
        starts[-1] += timedelta(seconds=gap_before_last_s)
        gap_start = t0 + timedelta(seconds=seconds * (count - 1))
        gaps.append(Gap(camera, gap_start, starts[-1], GapReason.CAMERA_OFFLINE))
    return FakeIndex(chain(camera, paths, starts, seconds), gaps)
