"""Recording in the running agent (a real process, a real camera, a real broker): it records, serves the
recordings over HTTP, publishes their state on MQTT, and a SIGKILL loses at most a second."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av

from edgeagent.record.index import RecordingIndex
from edgeagent.record.model import GapReason
from edgeagent.record.recorder import segment_path
from edgeagent.record.repair import repair
from edgeagent.record.service import INDEX_NAME
from tests.support.agent import AgentProcess, base_config
from tests.support.recording import ffmpeg_errors, until
from tests.test_offload import BUCKET, seaweed  # noqa: F401 (the SeaweedFS fixture)

ROOT = Path(__file__).resolve().parent.parent
FPS = 25
FRAME = 1 / FPS
SEGMENT_S = 4  # short: several segments (and their joins) within a test


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def rfc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def get(agent: AgentProcess, path: str, **query: datetime) -> bytes:
    url = agent.http_url + path
    if query:
        url += "?" + urllib.parse.urlencode({name: rfc(value) for name, value in query.items()})
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {agent.token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        body: bytes = response.read()
        return body


def listing(agent: AgentProcess, camera: str = "north") -> dict[str, Any]:
    now = datetime.now(UTC)
    try:
        document: dict[str, Any] = json.loads(get(agent, f"/recordings/{camera}", start=now - timedelta(hours=1),
                                                  end=now + timedelta(minutes=1)))  # fmt: skip
    except urllib.error.HTTPError:
        raise
    except (urllib.error.URLError, ConnectionError):  # not listening yet, or restarting
        return {"spans": [], "gaps": [], "segments": []}
    return document


def listing_if(agent: AgentProcess, condition: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    document = listing(agent)
    return document if condition(document) else None


def recorded_s(document: dict[str, Any]) -> float:
    return sum((parse(span["end"]) - parse(span["start"])).total_seconds() for span in document["spans"])


def open_s(document: dict[str, Any]) -> float:
    """How much of the segment being written the listing shows (0 when none is)."""
    segments = document.get("segments") or []
    if not segments or not segments[-1].get("open"):
        return 0.0
    return (parse(segments[-1]["end"]) - parse(segments[-1]["start"])).total_seconds()


def config(tmp_path: Path, broker: Any, camera: Any) -> dict[str, Any]:
    cfg = base_config(tmp_path, broker, {"north": camera}, agent={"health_interval_s": 1})
    cfg["recording"] = {"dir": str(tmp_path / "recordings"), "segment_s": SEGMENT_S}
    return cfg


def decode(data: bytes) -> list[float]:
    """Every frame's presentation time; a decoder error fails the test."""
    times = []
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            assert not frame.is_corrupt
            assert frame.pts is not None and stream.time_base is not None
            times.append(float(frame.pts * stream.time_base))
    return times


async def test_the_agent_records_serves_clips_and_exports_and_publishes_the_recording_state(
    camera_factory, broker, mqtt_watcher_factory, agent_factory, tmp_path: Path
) -> None:
    camera = camera_factory(width=320, height=180, fps=FPS, gop_s=1.0)
    agent = agent_factory(config(tmp_path, broker, camera))
    started = datetime.now(UTC)
    document = await until(lambda: listing_if(agent, lambda d: recorded_s(d) >= 14), 45, "14 s recorded")
    [span] = document["spans"]
    assert parse(span["start"]) - started < timedelta(seconds=8), "recording began late"
    # Up to now, less the fragment being filled (the segment being written is listed up to its last whole one).
    assert datetime.now(UTC) - parse(span["end"]) < timedelta(seconds=2.5), "the span is behind"

    start = parse(span["start"]) + timedelta(seconds=2.3)
    times = decode(get(agent, "/recordings/north/clip.mp4", start=start, end=start + timedelta(seconds=10)))
    visible = [t for t in times if t >= max(t for t in times if t < 0.002)]  # the pre-roll sits before 0
    duration = visible[-1] + FRAME - visible[0]
    assert abs(duration - 10.0) <= FRAME, duration

    export = tmp_path / "export.zip"
    export.write_bytes(get(agent, "/recordings/north/export.zip", start=start, end=start + timedelta(seconds=5)))
    key = tmp_path / "key.pem"
    key.write_bytes(get(agent, "/signing-key"))
    command = [sys.executable, "-m", "edgeagent", "verify", str(export), "--public-key", str(key)]
    verified = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert verified.returncode == 0 and verified.stdout.startswith("ok"), verified.stdout + verified.stderr

    # Subscribed late: the first message of each topic is the retained one. (Not the last: the recording
    # state is published again every health interval and on every change, and a live delivery carries no
    # retain flag.)
    watcher = mqtt_watcher_factory("edgeagent/cabinet-17/#")
    recording = await asyncio.to_thread(watcher.wait_for, "edgeagent/cabinet-17/cameras/north/recording", None, 10)
    assert recording.retain and json.loads(recording.payload)["state"] == "recording"
    signing = await asyncio.to_thread(watcher.wait_for, "edgeagent/cabinet-17/signing-key", None, 10)
    assert signing.retain and signing.payload == key.read_bytes()

    metrics = get(agent, "/metrics").decode()  # the names deploy/prometheus/alerts.yml alerts on
    assert 'edgeagent_recording_paused{camera="north"} 0.0' in metrics
    assert "\nedgeagent_recording_disk_days " in metrics

    camera.stop()
    await asyncio.sleep(4)  # the camera is away for a few seconds: that is the fault under test
    camera.start()
    before = len(document["spans"])
    document = await until(lambda: listing_if(agent, lambda d: len(d["spans"]) > before), 45, "recording again")
    reasons = [gap["reason"] for gap in document["gaps"]]
    assert reasons[-1:] == ["camera offline"], reasons


async def test_a_sigkilled_agent_keeps_all_but_the_last_second_and_the_gap_says_agent_crashed(
    camera_factory, agent_factory, tmp_path: Path
) -> None:
    camera = camera_factory(width=320, height=180, fps=FPS, gop_s=1.0)
    agent = agent_factory(config(tmp_path, None, camera))
    # Mid-segment: 2 s into the one being written.
    await until(lambda: listing_if(agent, lambda d: recorded_s(d) >= 6 and open_s(d) >= 2), 45, "6 s recorded")
    killed_at = datetime.now(UTC)
    agent.kill()
    agent.start()
    document = await until(lambda: listing_if(agent, lambda d: len(d["spans"]) >= 2), 45, "recording again")
    first = document["spans"][0]
    lost = (killed_at - parse(first["end"])).total_seconds()
    assert lost <= 1.0, f"lost {lost:.2f} s at the kill"
    assert [gap["reason"] for gap in document["gaps"]][:1] == ["agent crashed"]
    clip = tmp_path / "before-kill.mp4"
    clip.write_bytes(get(agent, "/recordings/north/clip.mp4", start=parse(first["start"]), end=parse(first["end"])))
    assert ffmpeg_errors(clip) == ""
    assert decode(clip.read_bytes())


async def test_a_reload_starts_and_stops_recording_with_the_cameras_and_leaves_the_others_untouched(
    camera_factory, agent_factory, tmp_path: Path
) -> None:
    north, south = (camera_factory(width=320, height=180, fps=FPS, gop_s=1.0) for _ in range(2))
    cfg = config(tmp_path, None, north)
    agent = agent_factory(cfg)
    await until(lambda: recorded_s(listing(agent, "north")) >= SEGMENT_S, 45, "north recorded")
    added = base_config(tmp_path / "reload", None, {"north": north, "south": south})["cameras"]
    cfg["cameras"] = added
    mark = agent.log_mark()
    agent.write_config(cfg)
    os.kill(agent.pid, signal.SIGHUP)
    await asyncio.to_thread(agent.wait_log, r"reload: applied in", 30, mark)
    await until(lambda: recorded_s(listing(agent, "south")) >= SEGMENT_S, 45, "south recorded after its addition")

    del cfg["cameras"]["south"]
    mark = agent.log_mark()
    agent.write_config(cfg)
    os.kill(agent.pid, signal.SIGHUP)
    await asyncio.to_thread(agent.wait_log, r"reload: applied in", 30, mark)
    south_gaps = await until(lambda: listing(agent, "south")["gaps"], 20, "south's gap")
    assert [gap["reason"] for gap in south_gaps] == ["recording disabled"]
    document = listing(agent, "north")
    assert len(document["spans"]) == 1 and document["gaps"] == [], "north's recording was interrupted"


def test_a_segment_killed_before_its_first_fragment_still_leaves_an_agent_crashed_gap(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    index = RecordingIndex(root / INDEX_NAME)
    start = datetime.now(UTC) - timedelta(seconds=5)
    path = segment_path(root, "north", start)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\0\0\0\x18ftypisom")  # the header begun, no fragment: nothing to keep
    index.open_segment("north", path, start, "h264", 320, 180)
    assert repair(index, root) == []
    assert not path.exists()
    [gap] = index.gaps("north")
    assert gap.reason == GapReason.AGENT_CRASHED and gap.start == start
    index.close()


def uploaded_files(agent: AgentProcess) -> float:
    try:
        text = get(agent, "/metrics").decode()
    except urllib.error.HTTPError:
        raise
    except (urllib.error.URLError, ConnectionError):  # not listening yet
        return 0.0
    for line in text.splitlines():
        if line.startswith("edgeagent_offload_uploaded_files_total "):
            return float(line.split()[1])
    return 0.0


async def export_keys(cluster: Any, within_s: float) -> list[str]:
    """The keys under the agent's exports once there is one."""
    deadline = time.monotonic() + within_s
    while True:
        async with cluster.client() as s3:
            answer = await s3.list_objects_v2(Bucket=BUCKET, Prefix="agent/cabinet-17/exports/")
        keys = [item["Key"] for item in answer.get("Contents", [])]
        if keys:
            return keys
        assert time.monotonic() < deadline, "no export reached object storage"
        await asyncio.sleep(0.2)


async def test_the_agent_offloads_what_it_records_and_an_http_export_once(
    camera_factory, agent_factory, seaweed, tmp_path: Path  # noqa: F811 (the fixture imported above)
) -> None:
    camera = camera_factory(width=320, height=180, fps=FPS, gop_s=1.0)
    cfg = config(tmp_path, None, camera)
    keys = {"access_key_file": seaweed.access_key, "secret_key_file": seaweed.secret_key}
    for name, value in keys.items():
        path = tmp_path / "secrets" / name
        path.write_text(value + "\n")
        path.chmod(0o600)
        keys[name] = str(path)
    cfg["offload"] = {"endpoint": seaweed.endpoint, "bucket": BUCKET, "prefix": "agent", "segments": True,
                      "scan_s": 0.5, **keys}  # fmt: skip
    agent = agent_factory(cfg)
    await until(lambda: uploaded_files(agent) >= 1, 60, "a segment uploaded")

    recorded_until = parse(listing(agent)["spans"][-1]["end"])
    start, end = recorded_until - timedelta(seconds=3), recorded_until - timedelta(seconds=1)
    exported = await asyncio.to_thread(get, agent, "/recordings/north/export.zip", start=start, end=end)
    again = await asyncio.to_thread(get, agent, "/recordings/north/export.zip", start=start, end=end)
    assert again != exported  # made anew (its own creation time), but the same video: not kept twice
    [key] = await export_keys(seaweed, 30)
    assert key.startswith("agent/cabinet-17/exports/cabinet-17-north-") and key.endswith(".zip")
    spool = tmp_path / "recordings" / ".offload-exports"  # every kept copy goes once it is uploaded
    await until(lambda: spool.is_dir() and not any(spool.iterdir()), 20, "the kept copy deleted after its upload")
    async with seaweed.client() as s3:
        stored = await s3.get_object(Bucket=BUCKET, Key=key)
        async with stored["Body"] as body:
            data = await body.read()
        answer = await s3.list_objects_v2(Bucket=BUCKET, Prefix="agent/cabinet-17/exports/")
    digest = hashlib.sha256(exported).hexdigest()  # the first one's: the second was not uploaded over it
    assert hashlib.sha256(data).hexdigest() == digest and stored["Metadata"]["sha256"] == digest
    assert [item["Key"] for item in answer["Contents"]] == [key]
