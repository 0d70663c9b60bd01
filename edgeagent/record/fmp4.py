"""Reading our own fragmented MP4 files without a demuxer: which fragments are whole, how long the video is,
when it started, what it holds. Repair, reindex and the writer's recovery after a full disk rely on it.

A file is ``ftyp``, ``moov`` (no samples: ``empty_moov``), then ``moof`` + ``mdat`` pairs, then ``mfra`` when
it was closed cleanly. Every whole pair is a recovery point.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

START_TAG = "edgeagent start="
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"udta", b"ilst", b"mvex", b"moof", b"traf"}


@dataclass
class Layout:
    size: int  # bytes in the file
    whole_end: int  # end of the last whole moof+mdat pair (or of the header when there is none)
    clean: bool  # every top-level box is complete
    timescale: int = 0
    codec: str = ""
    width: int = 0
    height: int = 0
    start_tag: str | None = None  # the wall-clock start written into the file
    fragments: int = 0
    first_time: int | None = None  # media time of the first sample, in timescale units
    end_time: int = 0  # media time after the last sample of the last whole fragment
    default_duration: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        if not self.timescale or self.first_time is None:
            return 0.0
        return (self.end_time - self.first_time) / self.timescale

    @property
    def start(self) -> datetime | None:
        return parse_start_tag(self.start_tag) if self.start_tag else None


def start_tag(start: datetime) -> str:
    return START_TAG + start.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_start_tag(text: str) -> datetime | None:
    from datetime import UTC

    if not text.startswith(START_TAG):
        return None
    try:
        return datetime.strptime(text[len(START_TAG) :], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _boxes(data: bytes, offset: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """(type, payload start, box end) of the boxes in ``data[offset:end]``; stops at a torn box."""
    end = len(data) if end is None else end
    found = []
    while offset + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            if offset + 16 > end:
                break
            size = struct.unpack_from(">Q", data, offset + 8)[0]
            header = 16
        elif size == 0:
            size = end - offset
        if size < header or offset + size > end:
            break
        found.append((kind, offset + header, offset + size))
        offset += size
    return found


def _walk(data: bytes, offset: int, end: int, layout: Layout) -> None:
    for kind, start, stop in _boxes(data, offset, end):
        if kind in _CONTAINERS:
            _walk(data, start, stop, layout)
        elif kind == b"meta":
            _walk(data, start + 4, stop, layout)  # a full box: version and flags first
        elif kind == b"\xa9cmt":
            for inner, payload, inner_stop in _boxes(data, start, stop):
                if inner == b"data":
                    text = data[payload + 8 : inner_stop].decode("utf-8", "replace")
                    if text.startswith(START_TAG):
                        layout.start_tag = text
        elif kind == b"mdhd":
            version = data[start]
            layout.timescale = struct.unpack_from(">I", data, start + (20 if version == 1 else 12))[0]
        elif kind == b"stsd":
            entries = _boxes(data, start + 8, stop)
            if entries:
                entry, payload, _ = entries[0]
                layout.codec = {b"avc1": "h264", b"avc3": "h264", b"hvc1": "hevc", b"hev1": "hevc"}.get(
                    entry, entry.decode("latin-1")
                )
                layout.width, layout.height = struct.unpack_from(">HH", data, payload + 24)
        elif kind == b"trex":
            layout.default_duration = struct.unpack_from(">I", data, start + 12)[0]


def _fragment_times(moof: bytes, default_duration: int) -> tuple[int, int]:
    """(base media time, total duration) of the first track of one moof."""
    base = 0
    duration = 0
    sample_default = default_duration
    stack = [(0, len(moof))]
    while stack:
        offset, end = stack.pop()
        for kind, start, stop in _boxes(moof, offset, end):
            if kind in (b"moof", b"traf"):
                stack.append((start, stop))
            elif kind == b"tfhd":
                flags = int.from_bytes(moof[start + 1 : start + 4], "big")
                position = start + 8
                position += 8 if flags & 0x01 else 0
                position += 4 if flags & 0x02 else 0
                if flags & 0x08:
                    sample_default = struct.unpack_from(">I", moof, position)[0]
            elif kind == b"tfdt":
                version = moof[start]
                base = struct.unpack_from(">Q" if version == 1 else ">I", moof, start + 4)[0]
            elif kind == b"trun":
                flags = int.from_bytes(moof[start + 1 : start + 4], "big")
                count = struct.unpack_from(">I", moof, start + 4)[0]
                position = start + 8 + (4 if flags & 0x01 else 0) + (4 if flags & 0x04 else 0)
                per_sample = 4 * bin(flags & 0xF00).count("1")
                if flags & 0x100:
                    for index in range(count):
                        duration += struct.unpack_from(">I", moof, position + index * per_sample)[0]
                else:
                    duration += count * sample_default
    return base, duration


def scan(path: Path) -> Layout:
    """The layout of one file, reading only box headers, the moov and the moofs."""
    with open(path, "rb") as file:
        return scan_file(file, os.fstat(file.fileno()).st_size)


def scan_file(file: BinaryIO, size: int) -> Layout:
    layout = Layout(size=size, whole_end=0, clean=True)
    offset = 0
    pending_moof: tuple[int, bytes] | None = None
    while offset < size:
        file.seek(offset)
        header = file.read(16)
        if len(header) < 8:
            layout.clean = False
            break
        box_size, kind = struct.unpack_from(">I4s", header)
        if box_size == 1 and len(header) >= 16:
            box_size = struct.unpack_from(">Q", header, 8)[0]
        elif box_size == 0:
            box_size = size - offset
        if box_size < 8 or offset + box_size > size:
            layout.clean = False
            break
        if kind in (b"ftyp", b"moov"):
            if kind == b"moov":
                file.seek(offset)
                body = file.read(box_size)
                _walk(body, 0, len(body), layout)
            layout.whole_end = offset + box_size
        elif kind == b"moof":
            file.seek(offset)
            pending_moof = (offset, file.read(box_size))
        elif kind == b"mdat" and pending_moof is not None:
            base, duration = _fragment_times(pending_moof[1], layout.default_duration)
            if layout.first_time is None:
                layout.first_time = base
            layout.end_time = max(layout.end_time, base + duration)
            layout.fragments += 1
            layout.whole_end = offset + box_size
            pending_moof = None
        offset += box_size
    if pending_moof is not None:
        layout.clean = False  # a moof without its mdat: torn
    return layout
