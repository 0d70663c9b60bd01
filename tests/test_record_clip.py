"""Clips cut from recorded fragmented-MP4 segments without re-encoding: real files made by ffmpeg, read
back and decoded with PyAV."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import timedelta
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from edgeagent.record.clip import ClipError, ClipSettings, NotFound, TooLong, plan_clip, write_clip
from tests.support.recordings import FPS, T0, FakeIndex, recorded

FRAME = 1 / FPS


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> FakeIndex:
    return recorded(tmp_path_factory.mktemp("segments"), count=3, seconds=10)


@pytest.fixture(scope="module")
def gapped(tmp_path_factory: pytest.TempPathFactory) -> FakeIndex:
    return recorded(tmp_path_factory.mktemp("gapped"), count=3, seconds=10, gap_before_last_s=5)


def cut(index: FakeIndex, start_s: float, end_s: float) -> bytes:
    start, end = T0 + timedelta(seconds=start_s), T0 + timedelta(seconds=end_s)
    out = io.BytesIO()
    write_clip(plan_clip("north", index.segments("north", start, end), start, end), out)
    return out.getvalue()


def decode(data: bytes) -> list[tuple[float, np.ndarray]]:
    """Every frame with its presentation time in seconds; a decoder error fails the test."""
    frames = []
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            assert not frame.is_corrupt
            frames.append((float(frame.pts * stream.time_base), frame.to_ndarray(format="gray")))
    return frames


def source_frame(index: FakeIndex, segment: int, at_s: float) -> np.ndarray:
    with av.open(str(index.segments_[segment].path)) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number == round(at_s * FPS):
                return frame.to_ndarray(format="gray")
    raise AssertionError("source frame not found")


def shown(frames: list[tuple[float, np.ndarray]]) -> list[tuple[float, np.ndarray]]:
    """The frames a player shows: the pre-roll sits in the first ticks, within a millisecond of 0."""
    first_shown = max(t for t, _ in frames if t < 0.002)
    return [(t, f) for t, f in frames if t >= first_shown]


def test_a_ten_second_clip_lasts_ten_seconds_every_frame_decodes_and_starts_at_start(index: FakeIndex) -> None:
    data = cut(index, 5.6, 15.6)  # across a segment boundary; the keyframe before 5.6 s is at 5.0 s
    frames = decode(data)
    visible = shown(frames)
    assert len(frames) - len(visible) == round(0.6 * FPS)  # pre-roll from the keyframe, decoded, not shown
    duration = visible[-1][0] + FRAME - visible[0][0]
    assert abs(duration - 10.0) <= FRAME, duration
    assert len(visible) == 10 * FPS
    assert np.array_equal(visible[0][1], source_frame(index, 0, 5.6)), "the first picture shown is not 5.6 s"
    assert np.array_equal(visible[-1][1], source_frame(index, 1, 5.6 - FRAME))


def test_a_start_between_two_frames_shows_the_picture_of_that_moment(index: FakeIndex) -> None:
    frames = decode(cut(index, 5.5, 6.5))  # frames at 5.48 and 5.52 s: 5.48 s is on screen at 5.5 s
    visible = shown(frames)
    assert np.array_equal(visible[0][1], source_frame(index, 0, 5.48))
    assert abs(visible[1][0] - 0.02) < 0.001
    assert abs(visible[-1][0] + FRAME - 1.0) <= FRAME


def test_a_clip_starting_on_a_segment_boundary_needs_no_pre_roll(index: FakeIndex) -> None:
    frames = decode(cut(index, 10, 12))
    assert len(frames) == len(shown(frames)) == 2 * FPS
    assert np.array_equal(frames[0][1], source_frame(index, 1, 0))


def test_a_gap_inside_a_clip_stays_a_gap_in_time(gapped: FakeIndex) -> None:
    # Segments at 0-10, 10-20 and 25-35 s (camera offline 20-25 s); the clip asks for 15-30 s.
    visible = shown(decode(cut(gapped, 15, 30)))
    times = [t for t, _ in visible]
    steps = np.diff(times)
    assert len(visible) == 10 * FPS
    assert abs(max(steps) - (5 + FRAME)) < 0.002  # the last frame before the gap is held through it
    assert abs(times[-1] + FRAME - 15.0) <= FRAME  # the clip's timeline is the wall clock


def test_a_range_before_the_first_recording_begins_where_recording_begins(gapped: FakeIndex) -> None:
    start, end = T0 + timedelta(seconds=21), T0 + timedelta(seconds=27)
    plan = plan_clip("north", gapped.segments("north", start, end), start, end)
    assert plan.start == T0 + timedelta(seconds=25) and plan.end == end
    assert len(shown(decode(cut(gapped, 21, 27)))) == 2 * FPS


def test_nothing_recorded_is_not_found_and_limits_are_kept(index: FakeIndex) -> None:
    start = T0 + timedelta(hours=2)
    with pytest.raises(NotFound):
        plan_clip("north", index.segments("north", start, start + timedelta(seconds=10)), start,
                  start + timedelta(seconds=10))
    with pytest.raises(NotFound):
        plan_clip("south", index.segments_, T0, T0 + timedelta(seconds=10))  # another camera's segments
    with pytest.raises(TooLong):
        plan_clip("north", index.segments_, T0, T0 + timedelta(hours=1, seconds=1))
    with pytest.raises(TooLong):
        plan_clip("north", index.segments_, T0, T0 + timedelta(seconds=31), ClipSettings(max_seconds=30))
    with pytest.raises(ClipError, match="after start"):
        plan_clip("north", index.segments_, T0 + timedelta(seconds=5), T0)


def test_a_clip_stops_where_the_picture_size_changes(index: FakeIndex) -> None:
    resized = [*index.segments_[:2], replace(index.segments_[2], width=640, height=360)]
    plan = plan_clip("north", resized, T0, T0 + timedelta(seconds=30))
    assert plan.end == T0 + timedelta(seconds=20) and len(plan.segments) == 2


def test_the_clip_is_fragmented_mp4_with_its_header_first(index: FakeIndex) -> None:
    data = cut(index, 2, 4)
    assert data[4:8] == b"ftyp" and b"moov" in data[:2048] and data.count(b"moof") >= 2
    with av.open(io.BytesIO(data)) as container:
        assert container.streams.video[0].time_base == Fraction(1, 90000)


def test_hashing_counts_every_byte(index: FakeIndex, tmp_path: Path) -> None:
    import hashlib

    start, end = T0 + timedelta(seconds=1), T0 + timedelta(seconds=3)
    out = io.BytesIO()
    result = write_clip(plan_clip("north", index.segments_, start, end), out)
    assert result.bytes == len(out.getvalue())
    assert result.sha256 == hashlib.sha256(out.getvalue()).hexdigest()


def test_a_segment_cut_off_mid_write_is_read_from_its_start(index: FakeIndex, tmp_path: Path) -> None:
    # The segment being written when the agent died: no fragment index at the end, a torn last fragment.
    whole = index.segments_[0].path.read_bytes()
    torn = tmp_path / "torn.mp4"
    torn.write_bytes(whole[: int(len(whole) * 0.7)])
    segment = replace(index.segments_[0], path=torn)
    start, end = T0 + timedelta(seconds=3.6), T0 + timedelta(seconds=5.6)
    out = io.BytesIO()
    write_clip(plan_clip("north", [segment], start, end), out)
    visible = shown(decode(out.getvalue()))
    assert np.array_equal(visible[0][1], source_frame(index, 0, 3.6))
    assert len(visible) == 2 * FPS


def test_an_h265_clip_with_b_frames_is_tagged_hvc1_every_frame_decodes_ends_within_two_frames(
        tmp_path: Path) -> None:
    from tests.support.recordings import chain, encode_segments

    paths = encode_segments(tmp_path, 2, 4, codec="hevc")
    segments = [replace(s, codec="hevc") for s in chain("north", paths, [T0, T0 + timedelta(seconds=4)], 4)]
    start, end = T0 + timedelta(seconds=2.6), T0 + timedelta(seconds=6.6)
    out = io.BytesIO()
    write_clip(plan_clip("north", segments, start, end), out)
    with av.open(io.BytesIO(out.getvalue())) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.codec_tag == "hvc1"
        frames = list(container.decode(stream))
        times = sorted(float(f.pts * stream.time_base) for f in frames)
    assert not [f for f in frames if f.is_corrupt]
    shown_times = [t for t in times if 0.002 <= t < 4.0]
    # The pre-roll from the keyframe at 2 s, then 4 s; frames decoded before the end but shown after it
    # (B-frames' forward references) sit in the last ticks, like the pre-roll.
    assert len(shown_times) == 4 * FPS - 1  # the frame at the start itself sits in the pre-roll's ticks
    assert 4.0 <= times[-1] < 4.002
    assert abs(shown_times[-1] + FRAME - 4.0) < 0.002
