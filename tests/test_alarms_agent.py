"""Camera alarms as an operator meets them: the agent as a real process, the simulator's road scene with a
fault commanded, the retained alarms topic on a real broker, the health and /metrics over HTTP.

The snapshot interval is an hour: an alarm raised within a few keyframes shows that every keyframe is
checked, not only the ones snapshotted.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.support import AgentProcess, Camera, MqttWatcher

BASE = "edgeagent/cabinet-17"
STATUS = f"{BASE}/cameras/road/status"
ALARMS = f"{BASE}/cameras/road/alarms"
RESET = f"{BASE}/cameras/road/alarms/reset"
GOP_S = 1.0
IN_FLIGHT_S = 0.5  # frames already encoded and on the wire when a fault is commanded
LATENCY_S = 2.0  # the agent's own delay (decode in a thread, MQTT) on a busy two-core machine
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def active(message: Any) -> list[str]:
    return list(json.loads(message.payload)["active"])


def http(agent: AgentProcess, path: str, method: str = "GET", token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(agent.http_url + path, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def picture_health(agent: AgentProcess) -> dict[str, Any]:
    status, body = http(agent, "/cameras", token=agent.token)
    assert status == 200
    return dict(json.loads(body)["cameras"][0]["health"]["picture"])


def poll_picture(agent: AgentProcess, until: Callable[[dict[str, Any]], bool], within_s: float) -> dict[str, Any]:
    """The camera's ``picture`` health once ``until`` holds for it (polled over HTTP)."""
    deadline = time.monotonic() + within_s
    while not until(seen := picture_health(agent)):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within_s} s: {seen}")
        time.sleep(0.2)
    return seen


def learned_view(picture: dict[str, Any]) -> bool:
    """The keyframe was compared with a learned reference view."""
    return picture["measures"] is not None and picture["measures"]["similarity"] is not None


@pytest.fixture
def road_agent(
    tmp_path: Any,
    broker: Any,
    camera_factory: Callable[..., Camera],
    agent_factory: Callable[..., AgentProcess],
    mqtt_watcher_factory: Callable[..., MqttWatcher],
    base_config: Callable[..., dict[str, Any]],
) -> tuple[Camera, AgentProcess, MqttWatcher]:
    """A road-scene camera (320x180, 10 fps, 1 s GOP) and the agent, once the camera is online and its
    alarms say nothing is wrong (the reference view learned on the normal picture)."""
    camera = camera_factory(scene="road", width=320, height=180, fps=10, gop_s=GOP_S)
    watcher = mqtt_watcher_factory(f"{BASE}/#")
    entry = {"url": camera.url, "transport": "tcp", "stall_timeout_s": 3, "snapshot": {"interval_s": 3600}}
    agent = agent_factory(base_config(tmp_path, broker, cameras={"road": entry}))
    watcher.wait_for(STATUS, lambda m: m.payload == b"online", timeout=20)
    # Offline from the start (retained before the first connect), cleared when the camera is online.
    first = watcher.wait_for(ALARMS, timeout=5)
    assert active(first) == ["offline"], first.payload
    watcher.wait_for(ALARMS, lambda m: active(m) == [], timeout=5)
    return camera, agent, watcher


def test_a_black_picture_raises_blank_within_three_keyframes_and_clears_after(
    road_agent: tuple[Camera, AgentProcess, MqttWatcher],
) -> None:
    camera, agent, watcher = road_agent
    camera.set_fault("black")
    commanded = time.monotonic()
    raised = watcher.wait_for(
        ALARMS, lambda m: "blank" in active(m), since=commanded, timeout=IN_FLIGHT_S + 3 * GOP_S + LATENCY_S
    )
    print(f"blank on the alarms topic {raised.arrival - commanded:.2f} s after the fault was commanded")
    document = json.loads(raised.payload)
    assert document["active"] == ["blank"], document
    assert RFC3339.match(document["since"]["blank"]), document
    assert raised.qos == 1

    # Retained: a client that subscribes now is told at once.
    late = MqttWatcher(watcher.broker, ALARMS).start()
    try:
        kept = late.wait_for(ALARMS, timeout=5)
        assert kept.retain and active(kept) == ["blank"]
    finally:
        late.close()

    # The same in the camera's health and in /metrics.
    status, body = http(agent, "/cameras", token=agent.token)
    assert status == 200
    picture = json.loads(body)["cameras"][0]["health"]["picture"]
    assert picture["active"] == ["blank"] and picture["since"] == document["since"], picture
    assert picture["checks"] >= 3 and picture["measures"]["detail"] < 0.2, picture
    status, body = http(agent, "/metrics", token=agent.token)
    metrics = body.decode()
    assert 'edgeagent_camera_alarm{alarm="blank",camera="road"} 1.0' in metrics
    assert 'edgeagent_camera_alarm{alarm="offline",camera="road"} 0.0' in metrics
    checks = re.search(r'^edgeagent_picture_checks_total\{camera="road"\} (\S+)$', metrics, re.M)
    assert checks is not None and float(checks.group(1)) >= 3
    assert re.search(r'^edgeagent_picture_check_seconds_total\{camera="road"\} \S+$', metrics, re.M)

    camera.set_fault(None)
    ended = time.monotonic()
    cleared = watcher.wait_for(
        ALARMS, lambda m: active(m) == [], since=ended, timeout=IN_FLIGHT_S + 4 * GOP_S + LATENCY_S
    )
    print(f"blank cleared {cleared.arrival - ended:.2f} s after the fault ended")
    assert json.loads(cleared.payload) == {"active": [], "since": {}}


def test_a_camera_that_dies_is_offline_on_its_alarms_topic(
    road_agent: tuple[Camera, AgentProcess, MqttWatcher],
) -> None:
    camera, agent, watcher = road_agent
    killed = time.monotonic()
    camera.kill()
    message = watcher.wait_for(ALARMS, lambda m: "offline" in active(m), since=killed, timeout=10)
    document = json.loads(message.payload)
    assert document["active"][0] == "offline" and RFC3339.match(document["since"]["offline"]), document
    status, body = http(agent, "/metrics", token=agent.token)
    assert 'edgeagent_camera_alarm{alarm="offline",camera="road"} 1.0' in body.decode()


def test_the_reset_command_forgets_the_reference_view_of_a_camera_turned_on_purpose(
    road_agent: tuple[Camera, AgentProcess, MqttWatcher],
) -> None:
    camera, agent, watcher = road_agent
    before = poll_picture(agent, learned_view, 8 * GOP_S)
    assert before["active"] == [], before
    camera.set_fault("shift")  # the camera was re-aimed
    turned = time.monotonic()
    watcher.wait_for(ALARMS, lambda m: "moved" in active(m), since=turned, timeout=IN_FLIGHT_S + 3 * GOP_S + LATENCY_S)

    asked = time.monotonic()
    watcher.publish(RESET, b"")
    answer = watcher.wait_for(ALARMS, since=asked, timeout=5)
    assert "moved" not in active(answer), answer.payload
    agent.wait_log("picture reference reset \\(MQTT command\\)", timeout=5)

    # A flood of resets right after it is refused (one reset per 5 s a camera) and logged once. The
    # snapshot asked for after the flood answers once the agent handled every command before it.
    flooded = time.monotonic()
    for _ in range(50):
        watcher.publish(RESET, b"")
    watcher.publish(f"{BASE}/cameras/road/snapshot/request", b"")
    watcher.wait_for(f"{BASE}/cameras/road/snapshot", since=flooded, timeout=10)
    assert time.monotonic() - asked < 5, "the flood came too late to test the limit"
    lines = agent.log_text().splitlines()
    assert sum(line.endswith("picture reference reset (MQTT command)") for line in lines) == 1
    assert sum("picture reference reset (MQTT command) ignored" in line for line in lines) == 1
    # Forgotten: the next keyframes are not compared with any reference while the new view is learned
    # (five keyframes); from then on the new view is the reference, and not "moved" against itself.
    at_reset = picture_health(agent)["checks"]
    poll_picture(agent, lambda p: p["checks"] > at_reset and not learned_view(p), 3 * GOP_S)
    compared = poll_picture(agent, lambda p: p["checks"] >= at_reset + 5 + 3 and learned_view(p), 12 * GOP_S)
    assert "moved" not in compared["active"], compared
    assert "moved" not in active(watcher.last(ALARMS))
