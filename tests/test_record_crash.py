"""A recorder killed with SIGKILL mid-segment: at the next start the torn segment is repaired, what was
recorded up to 1 s before the kill plays without a decoder error, and the gap says ``agent crashed``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edgeagent.record import fmp4
from edgeagent.record.index import RecordingIndex
from edgeagent.record.model import GapReason
from edgeagent.record.service import INDEX_NAME
from tests.support.recording import OffLoop, Recording, blocking, ffmpeg_errors, until

ROOT = Path(__file__).resolve().parent.parent


def start_recorder(url: str, directory: Path, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        [sys.executable, "-m", "edgeagent.record.standalone", "--dir", str(directory), "--segment-s", "60",
         f"north={url}"],
        stdout=subprocess.PIPE, stderr=open(log, "wb"), env=env,  # noqa: SIM115
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stdout.readline().strip() == b"RECORDING"
    return process


def open_file(directory: Path) -> Path | None:
    files = sorted(directory.glob("north/*/*.mp4"))
    return files[-1] if files else None


async def test_sigkill_mid_segment_loses_at_most_one_second_and_the_gap_says_agent_crashed(
    camera_factory, tmp_path: Path
) -> None:
    camera = camera_factory(width=320, height=180, fps=25, gop_s=1.0)
    directory = tmp_path / "rec"
    process = start_recorder(camera.url, directory, tmp_path / "recorder.log")
    try:
        path = await until(lambda: open_file(directory), 20, "a segment file")
        await until(lambda: fmp4.scan(path).duration_s >= 6, 30, "6 s in the file")
        killed_at = datetime.now(UTC)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    index = OffLoop(blocking(RecordingIndex, directory / INDEX_NAME))
    assert [row[1] for row in index.open_segments()] == [path]  # the index knew it was being written
    index.close()

    started = time.monotonic()
    async with Recording(camera.url, directory, segment_s=60) as rec:
        repaired = rec.index.segments("north")
        assert len(repaired) == 1 and repaired[0].path == path
        segment = repaired[0]
        lost = (killed_at - segment.end).total_seconds()
        assert lost <= 1.0, f"lost {lost:.2f} s of video at the kill"
        assert segment.end <= killed_at + timedelta(seconds=0.2)
        assert ffmpeg_errors(path) == ""
        assert blocking(fmp4.scan, path).clean and path.stat().st_size == segment.bytes
        await until(lambda: rec.recorder.state == "recording", 30, "recording again")
    assert time.monotonic() - started < 60
    gaps = rec.index.gaps("north")
    assert [gap.reason for gap in gaps][:1] == [GapReason.AGENT_CRASHED]
    crashed = gaps[0]
    spans = rec.index.spans("north")
    assert crashed.start == segment.end and crashed.end == spans[1][0]
