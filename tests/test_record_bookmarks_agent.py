"""Bookmarks in the running agent (a real process, a real GStreamer camera, recording on): an ONVIF motion
event from our stand-in (tests/support/onvif_standin.py, a camera whose clock runs 10 minutes ahead) is
listed at the moment it happened on our clock, a flood of events is one bookmark, and a picture alarm the
agent raises on a black picture is one too. No MQTT: bookmarks need only the recording."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.agent import AgentProcess
from tests.support.camera import Camera
from tests.support.onvif_standin import StandIn
from tests.support.recording import until

MOTION = "tns1:RuleEngine/CellMotionDetector/Motion"
TAMPER = "tns1:RuleEngine/TamperDetector/Tamper"
CAMERA_AHEAD_S = 600.0
CLOCK_TOLERANCE_S = 1.5  # the camera's offset is read from its HTTP Date header: whole seconds
FLOOD_EVENTS = 100
FLOOD_DEADLINE_S = 15.0


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def rfc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def http_json(agent: AgentProcess, path: str) -> Any:
    request = urllib.request.Request(agent.http_url + path, headers={"Authorization": f"Bearer {agent.token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, ConnectionError):  # not listening yet
        return None


def metric_values(agent: AgentProcess, name: str) -> dict[str, float]:
    """Every sample of ``name`` on /metrics, by its labels' text."""
    request = urllib.request.Request(agent.http_url + "/metrics", headers={"Authorization": f"Bearer {agent.token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    return {m[1]: float(m[2]) for m in re.finditer(rf"^{name}\{{([^}}]*)\}} (\S+)$", text, re.M)}


def bookmarks(agent: AgentProcess, camera: str, source: str | None = None) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    query = urllib.parse.urlencode({"start": rfc(now - timedelta(hours=1)), "end": rfc(now + timedelta(minutes=1))})
    body = http_json(agent, f"/recordings/{camera}/bookmarks?{query}")
    return [mark for mark in body["bookmarks"] if source in (None, mark["source"])] if body else []


def config(base_config: Callable[..., dict[str, Any]], tmp_path: Path, cameras: dict[str, Any]) -> dict[str, Any]:
    cfg = base_config(tmp_path, None, cameras)
    cfg["recording"] = {"dir": str(tmp_path / "recordings"), "segment_s": 4}
    return cfg


@pytest.fixture
async def standin() -> AsyncIterator[StandIn]:
    device = await StandIn(events=True, clock_offset_s=CAMERA_AHEAD_S).start()
    yield device
    await device.close()


async def test_an_onvif_motion_event_is_a_bookmark_at_its_time_and_a_flood_is_one(
    standin: StandIn, camera_factory: Callable[..., Camera], tmp_path: Path,
    base_config: Callable[..., dict[str, Any]], agent_factory: Callable[..., AgentProcess],
) -> None:  # fmt: skip
    camera = camera_factory(width=320, height=180)
    onvif = {"address": f"127.0.0.1:{standin.port}", "username": standin.user, "timeout_s": 2}
    agent = agent_factory(config(base_config, tmp_path, {"north": {"url": camera.url, "onvif": onvif,
                                                                   "password": standin.password}}))  # fmt: skip
    await until(lambda: standin.subscribed, 20, f"a PullPoint subscription:\n{agent.log_text()[-2000:]}")

    # It happened 10 s before the camera hands it over, stamped by the camera's clock (10 minutes ahead).
    happened = datetime.now(UTC) - timedelta(seconds=10)
    standin.event_time = rfc(happened + timedelta(seconds=CAMERA_AHEAD_S))
    queued = time.monotonic()
    standin.queued.append((MOTION, "true"))
    # (The test pattern may also raise a picture alarm, "frozen": a bookmark of its own, left out here.)
    [mark] = await until(lambda: bookmarks(agent, "north", "onvif"), 15, "the motion bookmark")
    assert (mark["kind"], mark["source"], mark["text"]) == ("motion", "onvif", f"ONVIF motion: {MOTION}")
    assert abs((parse(mark["time"]) - happened).total_seconds()) <= CLOCK_TOLERANCE_S, (mark, happened)

    # A hostile device: hundreds of motion events (and junk in their topics) as fast as it is pulled.
    before = standin.delivered
    standin.event_time = "not a time"
    flood_until = time.monotonic() + FLOOD_DEADLINE_S  # the agent pulls at most every 0.5 s: 4 pulls or more
    while standin.delivered - before < FLOOD_EVENTS and time.monotonic() < flood_until:
        if not standin.queued:
            standin.queued.extend((f"{MOTION}/&lt;x&gt;{i}&amp;", "true") for i in range(32))  # a pull reads 32
        await asyncio.sleep(0.01)
    await until(lambda: not standin.queued, 5, "the flood to be pulled")
    sent = datetime.now(UTC)
    standin.queued.append((TAMPER, "true"))
    marks = await until(lambda: (found := bookmarks(agent, "north", "onvif")) and found[-1]["kind"] == "tamper"
                        and found, 10, "the tamper bookmark after the flood")  # fmt: skip
    flooded = standin.delivered - before - 1
    assert flooded >= FLOOD_EVENTS, flooded
    # Within 10 s of the first motion bookmark the flood makes none; on a machine so loaded that the flood
    # ended later than that, one more per 10 s (the limit), never one per event.
    windows = 1 + int((time.monotonic() - queued) // 10)
    assert [m["kind"] for m in marks[:-1]] == ["motion"] * len(marks[:-1]) and 1 <= len(marks) - 1 <= windows, marks
    assert marks[-1]["kind"] == "tamper"
    # Operations see it: what the flood did is counted on /metrics (and in the agent's MQTT health).
    counted = metric_values(agent, "edgeagent_recording_bookmarks_total")
    assert counted['outcome="stored"'] >= len(marks) and counted['outcome="coalesced"'] >= 1, counted
    # No usable stamp ("not a time"): marked when it came, after it was sent and before it was listed.
    assert sent - timedelta(seconds=0.01) <= parse(marks[-1]["time"]) <= datetime.now(UTC)


async def test_a_black_picture_is_a_blank_bookmark(
    camera_factory: Callable[..., Camera], tmp_path: Path, base_config: Callable[..., dict[str, Any]],
    agent_factory: Callable[..., AgentProcess],
) -> None:  # fmt: skip
    camera = camera_factory(scene="road", width=320, height=180, fps=10, gop_s=1.0)
    entry = {"url": camera.url, "transport": "tcp", "snapshot": {"interval_s": 3600}}
    agent = agent_factory(config(base_config, tmp_path, {"road": entry}))

    def picture() -> dict[str, Any] | None:
        body = http_json(agent, "/cameras")
        return body["cameras"][0]["health"]["picture"] if body else None

    def learned() -> bool:  # the reference view was learned on the normal picture
        seen = picture()
        return bool(seen and seen["measures"] and seen["measures"]["similarity"] is not None and not seen["active"])

    await until(learned, 30, "the camera online with its view learned")
    assert bookmarks(agent, "road") == []
    camera.set_fault("black")
    raised = await until(lambda: (p := picture()) and "blank" in p["active"] and p, 15, "the blank alarm")
    [mark] = await until(lambda: bookmarks(agent, "road"), 10, "the blank bookmark")
    assert (mark["kind"], mark["source"], mark["text"]) == ("blank", "picture", "picture blank")
    assert parse(mark["time"]) == parse(raised["since"]["blank"])  # the moment the alarm was raised
