"""Retention and the disk, on a small tmpfs: oldest first by age and by free space, locked video never
deleted, a disk full of locked video pauses recording (``disk full``) until room comes back, and a disk
filled by someone else closes the segment cleanly at its last whole fragment. Ingest never stops."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edgeagent.record.model import GapReason
from tests.support.disk import tmpfs
from tests.support.recording import Recording, ffmpeg_errors, segment_files, until

MB = 1_000_000


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 20 MB tmpfs: a flash card that fills in seconds."""
    with tmpfs(tmp_path / "disk", "20m") as mount_point:
        yield mount_point


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def fill_to(directory: Path, free_left: int, name: str = "filler") -> Path:
    """Someone else's file that leaves ``free_left`` bytes free (0: fill it up)."""
    path = directory / name
    with open(path, "ab") as file:
        try:
            while free_bytes(directory) > free_left:
                file.write(b"\0" * min(65536, max(4096, free_bytes(directory) - free_left)))
                file.flush()
                os.fsync(file.fileno())
        except OSError:
            pass
    return path


def camera(camera_factory):  # noqa: ANN001, ANN201
    return camera_factory(width=320, height=180, fps=25, gop_s=1.0, bitrate_kbps=2000, pattern="snow")


async def test_retention_by_age_deletes_oldest_first_and_keeps_the_locked_range(
    camera_factory, small_disk: Path
) -> None:
    cam = camera(camera_factory)
    async with Recording(cam.url, small_disk / "rec", segment_s=2, retain="5s") as rec:
        first = await until(lambda: rec.index.segments("north"), 20, "a first segment")
        lock = rec.index.add_lock("north", first[0].start, first[0].end, "incident")
        def unlocked_deleted() -> bool:
            segments = rec.index.segments("north")
            return len(segments) > 1 and segments[1].start - first[0].end > timedelta(seconds=2)

        await until(unlocked_deleted, 40, "segments after the first deleted by age")
        await asyncio.sleep(2)
        now = datetime.now(UTC)
    segments = rec.index.segments("north")
    assert segments[0].path == first[0].path and segments[0].path.exists()  # locked: kept past its age
    for segment in segments[1:]:
        assert now - segment.end < timedelta(seconds=5 + 2.5)  # unlocked: none older than retain (+ a check)
    on_disk = set(segment_files(small_disk / "rec"))
    assert on_disk == {s.path for s in segments}  # deleted files are gone, kept ones indexed
    assert rec.index.locks("north")[0].id == lock.id


async def test_retention_by_free_space_keeps_min_free_and_the_locked_range(camera_factory, small_disk: Path) -> None:
    cam = camera(camera_factory)
    fill_to(small_disk, 9 * MB)
    async with Recording(cam.url, small_disk / "rec", segment_s=2, min_free="6MB") as rec:
        first = await until(lambda: rec.index.segments("north"), 20, "a first segment")
        rec.index.add_lock("north", first[0].start, first[0].end, "incident")
        deleted = await until(lambda: rec.retention.deleted >= 3 and rec.retention.deleted, 60, "deletions")
        lowest = free_bytes(small_disk)
        for _ in range(20):
            await asyncio.sleep(0.25)
            lowest = min(lowest, free_bytes(small_disk))
        assert rec.recorder.state == "recording"
        segments = rec.index.segments("north")
    assert deleted >= 3
    assert segments[0].path == first[0].path and first[0].path.exists()
    assert lowest > 6 * MB - 1 * MB  # never far under min_free: at most about a segment's worth
    assert segments[1].start > first[0].end  # the oldest unlocked went first


async def test_disk_full_of_locked_video_pauses_recording_and_it_resumes_when_the_lock_goes(
    camera_factory, small_disk: Path
) -> None:
    cam = camera(camera_factory)
    fill_to(small_disk, 8 * MB)
    async with Recording(cam.url, small_disk / "rec", segment_s=2, min_free="5MB") as rec:
        now = datetime.now(UTC)
        lock = rec.index.add_lock("north", now - timedelta(hours=1), now + timedelta(hours=1), "incident")
        await until(lambda: rec.recorder.state == "paused", 60, "paused")
        assert rec.recorder.reason == "disk full"
        packets = rec.hub.packets_total
        await asyncio.sleep(2)
        assert rec.hub.packets_total > packets + 25  # ingest goes on while recording is paused
        assert rec.recorder.state == "paused" and rec.retention.deleted == 0
        paused = rec.index.gaps("north")[-1]
        assert paused.reason == GapReason.DISK_FULL
        assert rec.index.remove_lock(lock.id)
        await until(lambda: rec.recorder.state == "recording", 30, "recording again")
        await until(lambda: rec.index.segments("north")[-1].start > paused.start, 30, "a new segment")
    assert rec.retention.deleted >= 1
    gap = [g for g in rec.index.gaps("north") if g.reason == GapReason.DISK_FULL][0]
    spans = rec.index.spans("north")
    assert gap.end == spans[-1][0]  # the gap ends where recording resumed
    for segment in rec.index.segments("north"):
        assert ffmpeg_errors(segment.path) == ""


async def test_disk_filled_by_someone_else_closes_the_segment_at_its_last_whole_fragment_and_resumes(
    camera_factory, small_disk: Path
) -> None:
    cam = camera(camera_factory)
    async with Recording(cam.url, small_disk / "rec", segment_s=30, min_free="0%") as rec:
        await until(lambda: rec.recorder.state == "recording", 20, "recording")
        await asyncio.sleep(2)
        filler = fill_to(small_disk, 0)
        await until(lambda: rec.recorder.state == "paused", 30, "paused by the full disk")
        assert rec.recorder.reason == "disk full"
        files = segment_files(small_disk / "rec")
        assert len(files) == 1 and ffmpeg_errors(files[0]) == ""  # cut at a whole fragment: plays cleanly
        packets = rec.hub.packets_total
        await asyncio.sleep(1)
        assert rec.hub.packets_total > packets  # ingest goes on
        filler.unlink()
        await until(lambda: rec.recorder.state == "recording", 30, "recording again")
        await until(lambda: len(rec.index.segments("north")) >= 1, 30, "the cut segment indexed")
        await asyncio.sleep(1.5)
    segments = rec.index.segments("north")
    assert segments[0].path == files[0] and segments[0].bytes == files[0].stat().st_size
    assert any(g.reason == GapReason.DISK_FULL for g in rec.index.gaps("north"))
    for segment in segments:
        assert ffmpeg_errors(segment.path) == ""
