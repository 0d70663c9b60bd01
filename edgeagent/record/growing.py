"""The segment being written, as readers see it: up to its last whole fragment, never further.

After each fragment reaches the disk the recorder publishes a new, immutable ``Segment`` with
``open=True`` (``Recorder.growing``): readers take it without a lock, so the writer never waits for one.
Its ``bytes`` are whole fragments only, and a reader goes no further than that (``BoundedFile``): the
fragment being muxed is never read half-written, and a read never waits for more. Its ``sha256`` covers
those bytes, and stays true of the file's first ``bytes`` bytes once the segment is closed (the file only
grows), so an export that used it can be checked against the closed segment later.

A reader takes the growing segment first and the index's closed segments after (``readable``): if the
segment closes in between, the index has it and the stale copy is dropped; the other order could miss it.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from edgeagent.record.model import Segment
from edgeagent.record.times import rfc3339

# Segments whose ends are closer than this count as one continuous span (the next starts where the last
# ended, up to rounding of the muxer's timescale).
SPAN_JOIN_S = 0.1
READ_CHUNK = 1 << 20


class BoundedFile(io.RawIOBase):
    """The first ``limit`` bytes of a file, read-only: what lies beyond does not exist for the reader."""

    def __init__(self, path: Path, limit: int) -> None:
        super().__init__()
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 (closed with this object)
        self.limit = limit
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        wanted = min(len(buffer), self.limit - self._position)
        if wanted <= 0:
            return 0
        self._file.seek(self._position)
        count = self._file.readinto(memoryview(buffer)[:wanted]) or 0
        self._position += count
        return count

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self.limit}[whence]
        self._position = max(0, min(self.limit, base + offset))
        return self._position

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        self._file.close()
        super().close()


def open_for_reading(segment: Segment) -> str | BinaryIO:
    """What to hand to ``av.open``: the path of a closed segment, a bounded view of an open one."""
    if not segment.open:
        return str(segment.path)
    return io.BufferedReader(BoundedFile(segment.path, segment.bytes), READ_CHUNK)


def segment_sha256(segment: Segment) -> str:
    """The SHA-256 of what the segment claims: the whole file, or an open one's first ``bytes`` bytes."""
    digest = hashlib.sha256()
    left = segment.bytes if segment.open else None
    with open(segment.path, "rb") as file:
        while left is None or left > 0:
            chunk = file.read(READ_CHUNK if left is None else min(READ_CHUNK, left))
            if not chunk:
                break
            digest.update(chunk)
            if left is not None:
                left -= len(chunk)
    return digest.hexdigest()


def readable(closed: Iterable[Segment], growing: Segment | None, start: datetime | None = None,
             end: datetime | None = None) -> list[Segment]:
    """The closed segments and the growing one (unless the index has it closed by now) that overlap
    [start, end), oldest first."""
    found = list(closed)
    if growing is not None and growing.end > growing.start and all(s.path != growing.path for s in found):
        found.append(growing)
    return sorted((s for s in found if (start is None or s.end > start) and (end is None or s.start < end)),
                  key=lambda s: s.start)


def join_spans(segments: Sequence[Segment], start: datetime | None = None, end: datetime | None = None
               ) -> list[tuple[datetime, datetime]]:
    """Continuous recorded time within [start, end), clipped to it, from segments in order of start."""
    merged: list[list[datetime]] = []
    for segment in segments:
        seg_start = max(segment.start, start) if start else segment.start
        seg_end = min(segment.end, end) if end else segment.end
        if merged and (seg_start - merged[-1][1]).total_seconds() <= SPAN_JOIN_S:
            merged[-1][1] = max(merged[-1][1], seg_end)
        else:
            merged.append([seg_start, seg_end])
    return [(a, b) for a, b in merged]


def with_growing(spans: list[tuple[datetime, datetime]], growing: Segment | None, start: datetime, end: datetime
                 ) -> tuple[list[tuple[datetime, datetime]], int | None]:
    """The closed segments' spans with the growing segment's time added; and which span (its index) is still
    being recorded, if one in the range is."""
    if growing is None or growing.end <= max(growing.start, start) or growing.start >= end:
        return spans, None
    a, b = max(growing.start, start), min(growing.end, end)
    joined = list(spans)
    if joined and (a - joined[-1][1]).total_seconds() <= SPAN_JOIN_S:
        if joined[-1][1] > b:
            return joined, None  # the index has it closed by now, and longer
        joined[-1] = (joined[-1][0], b)
    else:
        joined.append((a, b))
    return joined, len(joined) - 1


def totals_with_growing(oldest: datetime | None, newest: datetime | None, size: int, growing: Segment | None
                        ) -> tuple[datetime | None, datetime | None, int]:
    """A camera's (oldest start, newest end, bytes) of its closed segments with the segment being written
    counted up to its last whole fragment. Take ``growing`` before the totals: once the index has it closed,
    its end reaches at least as far (the file only grows) and the index already counts it."""
    if growing is None or growing.end <= growing.start or (newest is not None and newest >= growing.end):
        return oldest, newest, size
    return (growing.start if oldest is None else min(oldest, growing.start)), growing.end, size + growing.bytes


def not_recorded_yet(closed: Sequence[Segment], growing: Segment | None, start: datetime) -> str | None:
    """Why a range from ``start`` has nothing to read yet (the segment being written ends before it and no
    closed one reaches past it), or None."""
    if growing is not None and growing.end <= start and not any(s.end > start for s in closed):
        return f"nothing recorded yet from {rfc3339(start)}: the recording being written reaches {rfc3339(growing.end)}"
    return None
