"""The segment a camera is writing, found from the files alone: for the commands run on the box beside the
agent (``recordings export``, ``recordings list``), which have no recorder to ask (``Recorder.growing``).

It is the camera's newest file that the index has no closed row for: the one the index marks open, or a
newer one whose row a power cut took. The agent may be writing it right now, so it is only read: its
layout is scanned (``fmp4.scan_file``: box headers, the moov and the moofs, up to the first torn box) and
the ``Segment`` it gives covers its whole fragments only, hashed over exactly those bytes, as the
recorder's own growing segment does. When the agent is not running the same file is the torn last
segment that repair will cut back at the next start, to those same bytes. Nothing here writes.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Protocol

from edgeagent.record import fmp4
from edgeagent.record.model import Segment
from edgeagent.record.segment_names import start_from_name

READ_CHUNK = 1 << 20


class Index(Protocol):
    """What is needed of ``edgeagent.record.index.RecordingIndex``."""

    def open_segments(self) -> list[tuple[str, Path, datetime, str, int, int]]: ...
    def camera_totals(self, camera: str) -> tuple[datetime | None, datetime | None, int]: ...
    def segments(self, camera: str, start: datetime | None = None, end: datetime | None = None) -> list[Segment]: ...


class Unreadable(ValueError):
    """The open file holds nothing that plays (no header, no whole fragment, not an MP4 at all)."""


@dataclass(frozen=True)
class OpenSegment:
    segment: Segment | None  # its whole fragments, ``open=True``; None when there is none or it is unreadable
    note: str | None = None  # one line: why a file found was left out




def _candidates(index: Index, root: Path, camera: str, after: Segment | None) -> list[tuple[datetime, Path]]:
    """(start, path) of the files newer than the newest closed segment: the index's open rows and any file
    on the disk it has no row for (its days only: the day directories from the newest closed one on)."""
    found = {path: start for cam, path, start, *_ in index.open_segments() if cam == camera}
    camera_dir = root / camera
    first_day = after.start.strftime("%Y-%m-%d") if after else ""
    if camera_dir.is_dir():
        for day in (d for d in camera_dir.iterdir() if d.is_dir() and d.name >= first_day):
            for path in day.glob("*.mp4"):  # the camera's name is not put in the pattern: it may hold "[" or "*"
                start = start_from_name(path)
                if start is not None and path not in found:
                    found[path] = start
    return sorted(((s, p) for p, s in found.items() if after is None or (s > after.start and p != after.path)),
                  key=lambda item: item[0])


def read_open(camera: str, path: Path, start: datetime | None, prev_sha256: str | None, digest: bool = True
              ) -> Segment:
    """The open segment ``path`` holds, up to its last whole fragment; Unreadable or OSError otherwise.
    Without ``digest`` its ``sha256`` is left empty (a listing shows none: no need to read the video)."""
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        try:
            layout = fmp4.scan_file(file, size)
        except (ValueError, IndexError, struct.error) as exc:
            raise Unreadable(f"not a readable MP4 ({exc})") from exc
        if not layout.codec or not layout.timescale:
            raise Unreadable("no MP4 header (moov) in it")
        if layout.fragments == 0 or layout.duration_s <= 0:
            raise Unreadable("no whole fragment in it yet")
        begun = start or layout.start or start_from_name(path)
        if begun is None:
            raise Unreadable("its start time is neither in its header nor in its name")
        sha256 = _head_sha256(file, layout.whole_end) if digest else ""
    return Segment(camera, path, begun, begun + timedelta(seconds=layout.duration_s), layout.whole_end, layout.codec,
                   layout.width, layout.height, sha256, prev_sha256, open=True)


def _head_sha256(file: BinaryIO, count: int) -> str:
    """The SHA-256 of the file's first ``count`` bytes, and not one byte more."""
    digest = hashlib.sha256()
    file.seek(0)
    while count > 0:
        chunk = file.read(min(READ_CHUNK, count))
        if not chunk:
            raise Unreadable("it became shorter while it was read")
        digest.update(chunk)
        count -= len(chunk)
    return digest.hexdigest()


def find_open(index: Index, root: Path, camera: str, digest: bool = True) -> OpenSegment:
    """The segment ``camera`` is writing, as far as its whole fragments go. Take it before asking the index
    for closed segments (``growing.readable`` then drops it if the index has it closed by then)."""
    if camera in ("", ".", "..") or Path(camera).name != camera:
        return OpenSegment(None)  # not a camera's directory under ``root``: nothing of it is looked at
    newest_end = index.camera_totals(camera)[1]
    last = None
    if newest_end is not None:  # the newest closed segment: the link of the chain the open one continues
        ending = index.segments(camera, newest_end - timedelta(microseconds=1), None)
        last = max(ending, key=lambda s: s.start, default=None)
    try:
        candidates = _candidates(index, root, camera, last)
    except OSError as exc:
        return OpenSegment(None, f"the files of camera {camera} could not be listed: {exc.strerror or exc}")
    if not candidates:
        return OpenSegment(None)
    start, path = candidates[-1]
    try:
        return OpenSegment(read_open(camera, path, start, last.sha256 if last else None, digest))
    except FileNotFoundError:
        return OpenSegment(None)  # closed and deleted, or given up (no fragment) in between: nothing open
    except (Unreadable, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return OpenSegment(None, f"the open segment {path.name} of camera {camera} is left out: {reason}")
