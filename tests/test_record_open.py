"""The segment being written, in the running agent (a real process, a real GStreamer camera): it is listed
up to its last whole fragment, clips and exports reach into it, a clip cut while it is written leaves it
whole, and a range beyond what is on the disk gets a clear answer at once.

The segments here are longer than any test (``SEGMENT_S``): everything is read from the open segment, and
it closes only when the agent stops.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edgeagent.record.index import RecordingIndex
from edgeagent.record.model import Segment
from edgeagent.record.service import INDEX_NAME
from edgeagent.record.verify import verify_export
from tests.support.agent import AgentProcess, base_config
from tests.support.recording import ffmpeg_errors, frame_times, until
from tests.test_record_agent import decode, get, listing, open_s, parse, rfc

FPS = 25
FRAME_S = 1 / FPS
SEGMENT_S = 600  # longer than the test: the segment stays open until the agent stops


def config(tmp_path: Path, camera: Any, broker: Any = None) -> dict[str, Any]:
    cfg = base_config(tmp_path, broker, {"north": camera})
    cfg["recording"] = {"dir": str(tmp_path / "recordings"), "segment_s": SEGMENT_S}
    return cfg


def open_segment(agent: AgentProcess, at_least_s: float) -> dict[str, Any] | None:
    """The listing once its segment being written holds ``at_least_s`` seconds."""
    document = listing(agent)
    return document if open_s(document) >= at_least_s else None


def recording_health(agent: AgentProcess, condition: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    """The camera's ``recording`` health once ``condition`` holds of it."""
    health = json.loads(get(agent, "/cameras"))
    recording: dict[str, Any] = health["cameras"][0]["health"]["recording"]
    return recording if condition(recording) else None


def retained_state(watcher: Any, condition: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    """The last recording state on MQTT once ``condition`` holds of it."""
    message = watcher.last("edgeagent/cabinet-17/cameras/north/recording")
    state: dict[str, Any] | None = json.loads(message.payload) if message is not None else None
    return state if state is not None and condition(state) else None


def fetch(agent: AgentProcess, path: str, start: datetime, end: datetime) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a GET, errors included."""
    query = urllib.parse.urlencode({"start": rfc(start), "end": rfc(end)})
    request = urllib.request.Request(f"{agent.http_url}{path}?{query}",
                                     headers={"Authorization": f"Bearer {agent.token}"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def visible_times(clip: bytes) -> list[float]:
    """The clip's frames from its start on (the pre-roll before it sits at one tick each ahead of 0)."""
    times = decode(clip)
    first = max(t for t in times if t < 0.002)
    return [t for t in times if t >= first]


async def closed_segment(agent: AgentProcess, tmp_path: Path) -> Segment:
    """Stop the agent (its segment closes with ``agent stopped``) and read the one segment back."""
    code, _ = await asyncio.to_thread(agent.terminate, 20)
    assert code == 0, f"the agent did not stop cleanly: {code}"
    index = await asyncio.to_thread(RecordingIndex, tmp_path / "recordings" / INDEX_NAME)
    try:
        segments = await asyncio.to_thread(index.segments, "north")
    finally:
        await asyncio.to_thread(index.close)
    assert len(segments) == 1, segments
    return segments[0]


def wall_times(segment: Segment, start: datetime, end: datetime) -> list[float]:
    """Frames the closed segment holds in [start, end), as seconds after ``start``."""
    return [(t - start).total_seconds() for t in frame_times(segment.path, segment.start) if start <= t < end]


async def test_the_segment_being_written_is_listed_and_its_last_seconds_clip_and_export(
    camera_factory, agent_factory, tmp_path: Path
) -> None:
    camera = camera_factory(width=320, height=180, fps=FPS, gop_s=1.0)
    agent = agent_factory(config(tmp_path, camera))
    document = await until(lambda: open_segment(agent, 6.0), 45, "6 s in the segment being written")
    [span] = document["spans"]
    [listed] = document["segments"]
    assert span.get("open") is True and listed["sha256"] is None and listed["bytes"] > 0
    recorded_until = parse(span["end"])
    assert recorded_until == parse(listed["end"])
    behind = (datetime.now(UTC) - recorded_until).total_seconds()
    assert behind < 2.5, f"the listing is {behind:.1f} s behind: not the last fragment"

    start, end = recorded_until - timedelta(seconds=3), recorded_until  # the last three seconds
    status, headers, clip = await asyncio.to_thread(fetch, agent, "/recordings/north/clip.mp4", start, end)
    assert status == 200, clip
    assert parse(headers["X-Actual-Start"]) == start and parse(headers["X-Actual-End"]) == end
    times = visible_times(clip)
    assert times[0] == 0.0 and abs(len(times) - 3 * FPS) <= 1, (times[:3], len(times))
    steps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert max(steps) < 1.5 * FRAME_S and min(steps) > 0.5 * FRAME_S, (min(steps), max(steps))

    status, _, zipped = await asyncio.to_thread(fetch, agent, "/recordings/north/export.zip", start, end)
    assert status == 200, zipped
    export = tmp_path / "open-export.zip"
    export.write_bytes(zipped)
    public_key = await asyncio.to_thread(get, agent, "/signing-key")
    verdict = await asyncio.to_thread(verify_export, export, public_key)
    assert verdict.problems == [] and verdict.ok_line.startswith("ok"), verdict.problems
    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    [source] = manifest["segments"]
    assert source["open"] is True and parse(source["end"]) >= end

    # Beyond the last whole fragment: a clear refusal at once, for a clip and an export alike.
    for path in ("/recordings/north/clip.mp4", "/recordings/north/export.zip"):
        for ahead_s in (0.5, 3600.0):
            begun = time.monotonic()
            future = datetime.now(UTC) + timedelta(seconds=ahead_s)
            status, _, body = await asyncio.to_thread(fetch, agent, path, future, future + timedelta(seconds=5))
            assert status == 416 and b"nothing recorded yet" in body, (status, body)
            assert time.monotonic() - begun < 3, "the refusal took long"

    segment = await closed_segment(agent, tmp_path)
    # The clip's frames are the recording's own, at the times it recorded them.
    expected = wall_times(segment, start, end)
    assert len(expected) == len(times) and max(abs(a - b) for a, b in zip(expected, times, strict=True)) < 0.002
    # The export vouched for the open file's first bytes: the closed file still begins with exactly those.
    head = segment.path.read_bytes()[: source["bytes"]]
    assert hashlib.sha256(head).hexdigest() == source["sha256"] and len(head) == source["bytes"]
    assert source["prev_sha256"] == segment.prev_sha256


async def test_clips_cut_while_the_segment_is_written_leave_it_whole_and_health_counts_it(
    camera_factory, broker, mqtt_watcher_factory, agent_factory, tmp_path: Path
) -> None:
    camera = camera_factory(width=320, height=180, fps=FPS, gop_s=1.0)
    agent = agent_factory(config(tmp_path, camera, broker))
    watcher = mqtt_watcher_factory("edgeagent/cabinet-17/cameras/north/recording")
    await until(lambda: open_segment(agent, 2.0), 45, "2 s in the segment being written")
    clips: list[tuple[datetime, bytes]] = []
    for _ in range(4):  # two at a time, each up to the newest fragment, while the recorder writes on
        recorded_until = parse(listing(agent)["spans"][-1]["end"])
        start = recorded_until - timedelta(seconds=2)
        answers = await asyncio.gather(*(asyncio.to_thread(fetch, agent, "/recordings/north/clip.mp4", start,
                                                           start + timedelta(seconds=4)) for _ in range(2)))
        for status, headers, body in answers:
            assert status == 200, body
            assert parse(headers["X-Actual-End"]) >= recorded_until
            clips.append((start, body))
    # No segment is closed yet: health counts the one being written, up to its last whole fragment (its
    # figures are those of the last health interval, 2 s here).
    recording = await until(lambda: recording_health(agent, lambda r: r["newest"] is not None), 10, "newest")
    assert recording["dropped"] == 0 and recording["state"] == "recording" and recording["bytes"] > 0, recording
    newest = parse(recording["newest"])
    listed_to = parse(listing(agent)["spans"][-1]["end"])  # the listing's times are to the millisecond
    assert parse(recording["oldest"]) < newest < listed_to + timedelta(milliseconds=1), (newest, listed_to)
    state = await until(lambda: retained_state(watcher, lambda r: r["newest"] is not None), 10, "newest on MQTT")
    assert state["state"] == "recording" and state["bytes"] > 0 and parse(state["oldest"]) < parse(state["newest"])

    segment = await closed_segment(agent, tmp_path)
    assert segment.sha256 == hashlib.sha256(segment.path.read_bytes()).hexdigest()
    assert ffmpeg_errors(segment.path) == ""
    times = frame_times(segment.path, segment.start)
    steps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    assert max(steps) < 1.5 * FRAME_S, f"a frame is missing: a step of {max(steps):.3f} s"
    duration = (segment.end - segment.start).total_seconds()
    assert abs(len(times) - duration * FPS) <= 1, (len(times), duration)
    for start, clip in clips:  # and every clip holds the recording's frames, at their times
        shown = visible_times(clip)
        expected = [(t - start).total_seconds() for t in times if start <= t][: len(shown)]
        assert max(abs(a - b) for a, b in zip(expected, shown, strict=True)) < 0.002
