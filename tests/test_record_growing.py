"""The segment being written, as readers see it, without a camera: what the writer says is on the disk after
each fragment, a reader bounded to it (never the fragment being muxed), and how listings and clips add it
to the closed segments."""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import av
import pytest

from edgeagent.camera.packet import Packet
from edgeagent.record import fmp4
from edgeagent.record.clip import plan_clip, write_clip
from edgeagent.record.growing import BoundedFile, readable, segment_sha256, totals_with_growing, with_growing
from edgeagent.record.model import Segment
from edgeagent.record.writer import SegmentWriter
from tests.test_record_logic import STREAM, T0, encoded, packets, segment

FPS = 25


def offered_while_writing(path: Path, items: list[Packet], start: datetime, previous: str | None,
                          end_dts: int | None = None) -> list[Segment]:
    """Write ``items`` with the agent's writer; what a reader is offered after every fragment that reached
    the disk."""
    writer = SegmentWriter(path, items[0], start)
    offered = []
    for item in items[1:]:
        fragments = writer.fragments
        writer.push(item)
        if writer.fragments != fragments:
            offered.append(writer.synced_segment("north", previous))
            assert path.stat().st_size == offered[-1].bytes  # the fragment being filled is still in the muxer
    writer.close(end_dts)
    return offered


def write_growing(path: Path, count: int) -> list[Segment]:
    """Write ``count`` frames; what a reader is offered after every fragment that reached the disk."""
    return offered_while_writing(path, packets(encoded(count), STREAM), T0, "previous")


def test_after_each_fragment_the_writer_offers_exactly_its_whole_fragments(tmp_path: Path) -> None:
    path = tmp_path / "growing.mp4"
    offered = write_growing(path, 150)
    assert len(offered) >= 6  # about one a second
    data = path.read_bytes()
    for growing in offered:
        assert growing.open and growing.prev_sha256 == "previous"
        with BoundedFile(path, growing.bytes) as view:
            layout = fmp4.scan_file(view, growing.bytes)  # what a reader finds within the bound
        assert layout.clean and layout.whole_end == growing.bytes
        assert abs((T0 + timedelta(seconds=layout.duration_s) - growing.end).total_seconds()) < 1e-3
        assert growing.sha256 == hashlib.sha256(data[: growing.bytes]).hexdigest() == segment_sha256(growing)
    ends = [g.end for g in offered]
    assert ends == sorted(ends) and ends[-1] < T0 + timedelta(seconds=150 / FPS)


def test_a_bounded_file_ends_at_its_bound(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(bytes(range(200)))
    with BoundedFile(path, 120) as view:
        assert view.read() == bytes(range(120)) and view.read() == b""
        assert view.seek(0, os.SEEK_END) == 120 and view.seek(500) == 120 and view.read(10) == b""
        assert view.seek(-20, os.SEEK_END) == 100 and view.read(50) == bytes(range(100, 120))


def test_a_clip_of_the_open_segment_never_reads_the_fragment_being_written(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[tuple[int, int]] = []  # (end of what was read, the bound)
    bounded_readinto = BoundedFile.readinto

    def watched(self: BoundedFile, buffer: memoryview | bytearray) -> int:
        count = bounded_readinto(self, buffer)
        reads.append((self.tell(), self.limit))
        return count

    monkeypatch.setattr(BoundedFile, "readinto", watched)
    path = tmp_path / "growing.mp4"
    offered = write_growing(path, 150)
    growing = offered[3]
    full = path.read_bytes()
    # The file as a reader may meet it: the offered fragments, and half of the next one being written.
    torn = tmp_path / "torn.mp4"
    next_end = offered[4].bytes
    torn.write_bytes(full[: growing.bytes + (next_end - growing.bytes) // 2])
    segment_now = replace(growing, path=torn)
    start = growing.end - timedelta(seconds=1)
    plan = plan_clip("north", [segment_now], start, growing.end + timedelta(seconds=5))
    assert plan.end == growing.end  # the clip ends where the disk's whole fragments end
    out = io.BytesIO()
    result = write_clip(plan, out)
    with av.open(io.BytesIO(out.getvalue())) as container:
        frames = [frame for frame in container.decode(video=0)]
    assert not any(frame.is_corrupt for frame in frames)
    shown = [f for f in frames if f.time is not None and f.time >= -0.001]
    assert abs(len(shown) - round((plan.end - start).total_seconds() * FPS)) <= 1, len(shown)
    assert result.frames == len(frames)
    assert reads and all(end <= bound == growing.bytes for end, bound in reads)


def test_readers_take_the_growing_segment_once_and_in_order() -> None:
    closed = [segment(0), segment(1)]
    growing = replace(segment(2), open=True)
    assert readable(closed, growing) == [*closed, growing]
    assert readable(closed, replace(segment(1), open=True)) == closed  # the index has it closed by now
    assert readable(closed, replace(growing, end=growing.start)) == closed  # no whole fragment yet
    assert readable(closed, growing, T0 + timedelta(seconds=15), T0 + timedelta(seconds=21)) == [closed[1], growing]


def test_listing_spans_take_the_growing_segment_on_and_mark_it() -> None:
    start, end = T0, T0 + timedelta(hours=1)
    spans = [(T0, T0 + timedelta(seconds=20))]
    joined, open_span = with_growing(spans, replace(segment(2, seconds=3), open=True), start, end)
    assert joined == [(T0, T0 + timedelta(seconds=23))] and open_span == 0
    after_gap = replace(segment(3, seconds=3), open=True)  # starts at 30 s: a gap before it
    joined, open_span = with_growing(spans, after_gap, start, end)
    assert joined == [spans[0], (after_gap.start, after_gap.end)] and open_span == 1
    assert with_growing(spans, None, start, end) == (spans, None)
    assert with_growing(spans, after_gap, start, T0 + timedelta(seconds=25)) == (spans, None)  # out of range
    closed_longer = [(T0, T0 + timedelta(seconds=40))]  # closed (and longer) since the reader took it
    assert with_growing(closed_longer, after_gap, start, end) == (closed_longer, None)


def test_recording_totals_count_the_growing_segment_up_to_its_last_whole_fragment() -> None:
    closed = [segment(0), segment(1)]
    totals = (closed[0].start, closed[1].end, closed[0].bytes + closed[1].bytes)
    growing = replace(segment(2, seconds=3), open=True)
    assert totals_with_growing(*totals, growing) == (closed[0].start, growing.end, totals[2] + growing.bytes)
    assert totals_with_growing(None, None, 0, growing) == (growing.start, growing.end, growing.bytes)  # the first
    assert totals_with_growing(*totals, None) == totals
    assert totals_with_growing(*totals, replace(growing, end=growing.start)) == totals  # no whole fragment yet
    closed_since = (closed[0].start, segment(2).end, totals[2] + segment(2).bytes)  # the index has it closed now
    assert totals_with_growing(*closed_since, growing) == closed_since
