"""Recording a real (simulated) RTSP camera into real files, read back with PyAV and ffmpeg."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from edgeagent.record.index import RecordingIndex, now_utc
from edgeagent.record.model import Bookmark, GapReason
from edgeagent.record.repair import reindex
from edgeagent.record.service import INDEX_NAME
from tests.support.recording import OffLoop, Recording, blocking, ffmpeg_errors, frame_times, probe, until

FPS = 25
FRAME_S = 1 / FPS


async def test_continuous_recording_gives_a_10_s_stretch_from_the_middle_that_decodes_every_frame(
    camera_factory, tmp_path: Path
) -> None:
    camera = camera_factory(width=320, height=180, fps=FPS, gop_s=1.0)
    async with Recording(camera.url, tmp_path / "rec", segment_s=4) as rec:
        await until(lambda: rec.index.spans("north") and len(rec.index.segments("north")) >= 4, 40, "16 s recorded")
        stats = (await rec.service.astats())["north"]
    assert stats.state == "recording" and stats.reason is None and stats.dropped == 0
    assert stats.oldest is not None and stats.newest is not None and stats.oldest < stats.newest
    assert stats.bytes > 0 and stats.bytes_written >= stats.bytes and stats.bytes_per_hour > 0
    assert stats.disk_days is not None and stats.disk_days > 0 and stats.endurance_used is None
    segments = rec.index.segments("north")
    spans = rec.index.spans("north")
    assert len(spans) == 1, f"one continuous span expected, got {spans}"
    for earlier, later in zip(segments, segments[1:], strict=False):
        assert later.start == earlier.end  # segments join exactly: the wall clock is kept, not rebased
        assert later.prev_sha256 == earlier.sha256
    for segment in segments:
        assert ffmpeg_errors(segment.path) == ""
        assert segment.path.stat().st_size == segment.bytes
    begin = spans[0][0] + timedelta(seconds=3)
    end = begin + timedelta(seconds=10)
    times = [t for s in segments for t in frame_times(s.path, s.start) if begin <= t < end]
    assert abs(len(times) - 10 * FPS) <= 1, f"{len(times)} frames in 10 s"
    covered = (times[-1] - times[0]).total_seconds() + FRAME_S
    assert abs(covered - 10.0) <= FRAME_S, covered
    steps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    assert max(steps) < 1.5 * FRAME_S  # no frame missing across segment boundaries


async def test_camera_stopped_for_a_few_seconds_is_a_camera_offline_gap_and_recording_resumes(
    camera_factory, tmp_path: Path
) -> None:
    camera = camera_factory(width=320, height=180, fps=FPS, gop_s=1.0)
    async with Recording(camera.url, tmp_path / "rec", segment_s=4) as rec:
        await until(lambda: rec.recorder.state == "recording", 20, "recording")
        await asyncio.sleep(2)
        camera.stop()
        await until(lambda: rec.index.gaps("north"), 20, "a gap")
        assert rec.recorder.state == "paused" and rec.recorder.reason == "camera offline"
        await asyncio.sleep(3)
        camera.start()
        await until(lambda: rec.recorder.state == "recording", 40, "recording resumed")
        await asyncio.sleep(2)
    gaps = rec.index.gaps("north")
    spans = rec.index.spans("north")
    assert len(spans) == 2
    offline = [gap for gap in gaps if gap.reason == GapReason.CAMERA_OFFLINE]
    assert len(offline) == 1
    assert offline[0].start == spans[0][1] and offline[0].end == spans[1][0]
    assert (offline[0].end - offline[0].start).total_seconds() >= 3
    for segment in rec.index.segments("north"):
        assert ffmpeg_errors(segment.path) == ""


async def test_h265_recording_plays_and_is_tagged_hvc1(camera_factory, tmp_path: Path) -> None:
    camera = camera_factory(codec="h265", width=320, height=180, fps=FPS, gop_s=1.0)
    async with Recording(camera.url, tmp_path / "rec", segment_s=3) as rec:
        await until(lambda: len(rec.index.segments("north")) >= 1, 40, "a closed segment")
    segment = rec.index.segments("north")[0]
    assert segment.codec == "hevc"
    info = probe(segment.path)
    assert info["codec_name"] == "hevc" and info["codec_tag_string"] == "hvc1"
    assert (info["width"], info["height"]) == ("320", "180")
    assert ffmpeg_errors(segment.path) == ""
    times = frame_times(segment.path, segment.start)  # PyAV decodes it too
    assert abs(len(times) - round((segment.end - segment.start).total_seconds() * FPS)) <= 1


async def test_deleted_database_is_rebuilt_by_reindex_with_the_same_spans_chain_gap_reasons_and_bookmarks(
    camera_factory, tmp_path: Path
) -> None:
    camera = camera_factory(width=320, height=180, fps=FPS, gop_s=1.0)
    root = tmp_path / "rec"
    async with Recording(camera.url, root, segment_s=2) as rec:
        await until(lambda: len(rec.index.segments("north")) >= 2, 40, "two segments")
        camera.stop()  # a camera offline gap, closed when it comes back
        await until(lambda: rec.index.gaps("north"), 20, "a gap")
        camera.start()
        await until(lambda: len(rec.index.spans("north")) == 2, 40, "recording again after the gap")
        lock = rec.index.add_lock("north", rec.index.spans("north")[0][0], rec.index.spans("north")[0][1], "incident")
        first = rec.index.spans("north")[0][0]
        rec.index.add_bookmarks([Bookmark("north", first + timedelta(seconds=1), "motion", "onvif", "ONVIF motion: x"),
                                 Bookmark("north", first + timedelta(seconds=2), "blank", "picture", "picture blank")])
    marks = rec.index.bookmarks("north", first, now_utc())
    assert len(marks) == 2
    before_spans = rec.index.spans("north")
    before = [(s.path, s.start, s.end, s.sha256, s.prev_sha256) for s in rec.index.segments("north")]
    gaps = rec.index.gaps("north")  # the one the stop opened goes on (it ends "now")
    before_gaps = [(g.start, g.reason) for g in gaps]
    assert [reason for _, reason in before_gaps] == [GapReason.CAMERA_OFFLINE, GapReason.AGENT_STOPPED]
    for path in root.glob(INDEX_NAME + "*"):
        if not path.name.endswith(".locks.json"):
            path.unlink()
    index = OffLoop(blocking(RecordingIndex, root / INDEX_NAME))
    assert index.segments("north") == [] and index.gaps("north") == []
    assert index.bookmarks("north", first, now_utc()) == []
    done = blocking(reindex, index.target, root)
    assert (done.segments, done.gaps, done.bookmarks) == (len(before), 2, 2)
    assert index.bookmarks("north", first, now_utc()) == marks  # the bookmarks too, identical
    assert index.spans("north") == before_spans
    assert [(s.path, s.start, s.end, s.sha256, s.prev_sha256) for s in index.segments("north")] == before
    assert [lk.id for lk in index.locks("north")] == [lock.id]  # locks survive the lost database
    after = index.gaps("north")  # and the gaps, each with its reason
    assert [(g.start, g.reason) for g in after] == before_gaps and after[0].end == gaps[0].end
    assert index.has_open_gap("north")
