"""``edgeagent recordings export`` run on the box beside the running agent (a real process, a real GStreamer
camera) reaches into the segment the agent is writing: as far as the recorder itself offers it, a fragment
behind the camera at most, the zip verifying with ``edgeagent verify`` and the bytes it vouched for being
exactly those the closed file begins with.

The segment is longer than the test (``SEGMENT_S``): the range lies in the open segment, which the index
has no closed row for until the agent stops; ``recordings list`` shows it too. A closed and an open segment
in one export: tests/test_record_open_file.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import zipfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support.agent import base_config
from tests.support.recording import until
from tests.test_record_agent import ROOT, decode, get, listing, parse, rfc
from tests.test_record_open import closed_segment, open_segment

FPS = 25
SEGMENT_S = 600


def edgeagent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgeagent", *args], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)  # fmt: skip


def open_end(document: dict[str, Any]) -> datetime:
    """Where the recorder's own offer of the segment being written ends (``GET /recordings/<cam>``)."""
    [segment] = document["segments"]
    assert segment["open"] is True, segment
    return parse(segment["end"])


async def test_the_offline_export_reaches_into_the_segment_the_running_agent_is_writing(
    camera_factory, agent_factory, tmp_path: Path
) -> None:
    camera = camera_factory(width=320, height=180, fps=FPS, gop_s=1.0)
    cfg = base_config(tmp_path, None, {"north": camera})
    cfg["recording"] = {"dir": str(tmp_path / "recordings"), "segment_s": SEGMENT_S}
    agent = agent_factory(cfg)
    document = await until(lambda: open_segment(agent, 4.0), 45, "4 s in the segment being written")
    before = open_end(document)  # how far the recorder itself offers it now
    start, end = before - timedelta(seconds=3), before + timedelta(seconds=0.5)  # the end inside it, or just past
    output = tmp_path / "incident.zip"
    run = await asyncio.to_thread(edgeagent, "recordings", "export", "-c", str(agent.config_path), "--camera",
                                  "north", "--start", rfc(start), "--end", rfc(end), "-o", str(output))
    after = open_end(await asyncio.to_thread(listing, agent))
    assert run.returncode == 0 and run.stderr == "", run.stderr
    assert "1 segment(s), the last still open" in run.stdout, run.stdout

    key = tmp_path / "cabinet.pem"
    key.write_bytes(await asyncio.to_thread(get, agent, "/signing-key"))
    verified = await asyncio.to_thread(edgeagent, "verify", str(output), "--public-key", str(key))
    assert verified.returncode == 0 and verified.stdout.startswith("ok"), verified.stdout + verified.stderr
    with zipfile.ZipFile(output) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        clip = archive.read("clip.mp4")
    [source] = manifest["segments"]
    actual_end = parse(manifest["actual"]["end"])
    assert source["open"] is True and parse(manifest["actual"]["start"]) == start
    # Between the recorder's own offers before and after: its last whole fragment, never beyond.
    assert before <= actual_end <= min(end, after), (before, actual_end, end, after)
    times = decode(clip)  # every frame decodes
    shown = [t for t in times if t >= max(t for t in times if t < 0.002)]  # the pre-roll sits before 0
    duration = (actual_end - start).total_seconds()
    assert abs(shown[-1] + 1 / FPS - duration) < 1.5 / FPS and abs(len(shown) - duration * FPS) <= 1, duration

    # ``recordings list`` beside the running agent shows it too, up to a whole fragment.
    listed = await asyncio.to_thread(edgeagent, "recordings", "list", "-c", str(agent.config_path), "--segments")
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    [span] = [line for line in listed.stdout.splitlines() if line.startswith("  recorded ")]
    [line] = [line for line in listed.stdout.splitlines() if line.startswith("  segment ")]
    assert span.endswith("still being recorded") and "open (whole fragments)" in line, listed.stdout
    assert parse(span.split()[3]) >= actual_end and parse(line.split()[3]) == parse(span.split()[3])

    # The open file's first bytes, as the export vouched for them, are the closed file's first bytes.
    segment = await closed_segment(agent, tmp_path)
    head = segment.path.read_bytes()[: source["bytes"]]
    assert source["file"] == segment.path.name and len(head) == source["bytes"] < segment.bytes
    assert hashlib.sha256(head).hexdigest() == source["sha256"]
