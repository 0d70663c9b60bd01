"""Hostile input over the broker, the agent as a real process (issue 8, findings 1 and 4).

The attacker is a broker user allowed to send commands (ACLs keep everyone else out; see
test_hostile_broker_acl.py): a restart flood, a snapshot-request flood, a WebRTC offer flood with reused
session ids, and a 40,000-character camera name. The agent must keep its camera online, bound what it
publishes and the memory it takes, answer /healthz within a second, and log no secret.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time

import pytest

from tests.support import base_config
from tests.support.hostile import (
    Probe,
    assert_log_lines_bounded,
    assert_no_secret_in_log,
    get,
    http_address,
    rss_bytes,
)
from tests.support.live_client import PythonViewer

pytestmark = pytest.mark.hostile

BASE = "edgeagent/cabinet-17"


@pytest.fixture
def commanded_agent(tmp_path, broker, camera_factory, agent_factory, mqtt_watcher_factory):
    """``start(**overrides)``: the agent with camera ``north`` (with a password), online; returns
    (agent, watcher on BASE/#). After the test: no secret in its log."""
    started = []

    def start(**overrides):
        camera = camera_factory(user="viewer", password="cam-pw-" + os.urandom(6).hex(), width=320, height=180)
        config = base_config(tmp_path, broker, {"north": camera}, **overrides)
        config["cameras"]["north"]["snapshot"] = {"interval_s": 3600, "width": 320}
        agent = agent_factory(config)
        watcher = mqtt_watcher_factory(f"{BASE}/#")
        watcher.wait_for(f"{BASE}/cameras/north/status", lambda m: m.payload == b"online", timeout=30)
        started.append((agent, camera))
        return agent, watcher

    yield start
    for agent, camera in started:
        assert_no_secret_in_log(agent, agent.token, camera.password, broker.password)
        assert_log_lines_bounded(agent)


def _online_fraction(messages, start: float, end: float) -> float:
    """Share of [start, end] the camera was online, from its status messages (online at ``start``)."""
    online, since, total = True, start, 0.0
    for message in messages:
        if not start <= message.arrival <= end:
            continue
        now_online = message.payload == b"online"
        if online and not now_online:
            total += message.arrival - since
        elif now_online and not online:
            since = message.arrival
        online = now_online
    if online:
        total += end - since
    return total / (end - start)


def test_a_restart_flood_keeps_the_camera_online(commanded_agent) -> None:
    agent, watcher = commanded_agent()
    window_s = 25.0
    start = time.monotonic()
    with Probe(*http_address(agent), period_s=0.25) as probe:
        while time.monotonic() - start < window_s:
            watcher.publish(f"{BASE}/cameras/north/restart", b"", qos=0)
            time.sleep(0.5)  # one every 0.5 s (one every 3 s kept a camera online 58 % of the time)
    end = time.monotonic()
    probe.assert_answered_within(1.0)
    fraction = _online_fraction(watcher.messages(f"{BASE}/cameras/north/status"), start, end)
    print(f"camera online {fraction:.1%} of a {window_s:.0f} s restart flood")
    assert fraction >= 0.9
    assert agent.log_text().count("restart for camera north ignored") <= 2
    _, metrics, _ = get(agent, "/metrics", agent.token)
    refused = re.search(rb'^edgeagent_mqtt_commands_refused_total\{command="restart"\} (\d+)', metrics, re.M)
    assert refused and int(refused.group(1)) >= 30  # of about 40 sent


def test_a_snapshot_request_flood_publishes_a_bounded_number_of_jpegs(commanded_agent) -> None:
    agent, watcher = commanded_agent()
    watcher.wait_for(f"{BASE}/cameras/north/snapshot", timeout=15)  # the one at start
    start = time.monotonic()
    with Probe(*http_address(agent)) as probe:
        for _ in range(3000):
            watcher.client.publish(f"{BASE}/cameras/north/snapshot/request", b"", qos=0)
        flood_s = time.monotonic() - start
        time.sleep(4.0)
    window_s = time.monotonic() - start
    probe.assert_answered_within(1.0)
    jpegs = [m for m in watcher.messages(f"{BASE}/cameras/north/snapshot") if m.arrival >= start]
    print(f"{len(jpegs)} JPEGs for 3000 requests sent in {flood_s:.2f} s, over {window_s:.1f} s")
    assert 1 <= len(jpegs) <= window_s / 2 + 2  # one at once, then at most one every 2 s


async def test_an_offer_flood_is_bounded_and_a_session_id_cannot_be_reused(commanded_agent) -> None:
    agent, watcher = await asyncio.to_thread(
        commanded_agent,
        webrtc={"host_addresses": ["127.0.0.1"], "max_viewers_total": 4, "max_viewers_per_camera": 4,
                "connect_timeout_s": 30},
    )  # fmt: skip
    viewer = PythonViewer()
    try:
        sdp = await viewer.offer()
    finally:
        await viewer.close()
    topic = f"{BASE}/cameras/north/webrtc/offer"
    rss_before = rss_bytes(agent.pid)

    def flood() -> None:
        for i in range(300):
            watcher.client.publish(topic, json.dumps({"session_id": f"flood-{i}", "sdp": sdp}), qos=0)
        big = json.dumps({"session_id": "big", "sdp": sdp + "a=x-padding:" + "p" * 100_000 + "\r\n"})
        for _ in range(50):
            watcher.client.publish(topic, big, qos=0)

    with Probe(*http_address(agent)) as probe:
        await asyncio.to_thread(flood)
        await asyncio.sleep(3.0)
    probe.assert_answered_within(1.0)
    answers = watcher.messages(f"{BASE}/webrtc/+/answer")
    answered = [m for m in answers if "sdp" in json.loads(m.payload)]
    assert 1 <= len(answered) <= 4, f"{len(answered)} viewers started by the flood"
    assert not watcher.messages(f"{BASE}/webrtc/big/answer")
    growth = rss_bytes(agent.pid) - rss_before
    print(f"{len(answered)} sessions, {len(answers)} answers for 350 offers; RSS +{growth / 1e6:.0f} MB")
    assert growth < 80e6

    # Someone publishes an offer under a live viewer's session id: refused, nothing on that viewer's topic.
    victim = answered[0].topic.split("/")[-2]
    await asyncio.to_thread(watcher.publish, topic, {"session_id": victim, "sdp": sdp})
    await asyncio.to_thread(watcher.publish, f"{BASE}/cameras/nowhere/webrtc/offer", {"session_id": "s-1", "sdp": sdp})
    await asyncio.to_thread(watcher.wait_for, f"{BASE}/webrtc/s-1/answer", None, 10)  # later than the reuse
    assert len(watcher.messages(f"{BASE}/webrtc/{victim}/answer")) == 1


def test_a_40000_character_camera_name_does_not_freeze_the_agent(commanded_agent) -> None:
    agent, watcher = commanded_agent(webrtc={"host_addresses": ["127.0.0.1"]})
    name = "n" * 40_000
    with Probe(*http_address(agent)) as probe:
        for _ in range(5):
            watcher.publish(f"{BASE}/cameras/{name}/webrtc/offer", {"session_id": "long-1", "sdp": "v=0"})
            watcher.publish(f"{BASE}/cameras/{name}/restart", b"")
            watcher.publish(f"{BASE}/cameras/{name}/snapshot/request", b"")
            watcher.publish(f"{BASE}/cameras/{'m' * 300}/restart", b"")  # short enough to be read
        time.sleep(1.0)
    probe.assert_answered_within(1.0)
    assert set(probe.statuses) == {200}
    assert not watcher.messages(f"{BASE}/webrtc/long-1/answer")
    assert "unknown camera" in agent.log_text()
    assert name[:1000] not in agent.log_text()
