"""The agent process publishes a camera into Janus when the centre asks (MQTT or HTTP), and stops.

Janus runs in a network namespace (tests/support/janus.py); the agent, the camera and the broker run in
the test's namespace, the agent offering its side of the cabinet's link as its only host candidate.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import base_config, write_secret
from tests.support.browser import looks_like_smpte, summarise_rgb
from tests.support.janus import JANUS_SECRET, Janus, JanusViewer
from tests.support.uplink import room_publishers

pytestmark = pytest.mark.skipif(
    shutil.which("janus") is None or os.geteuid() != 0, reason="needs Debian's janus and root (network namespace)"
)

ROOM = 5151
DISPLAY = "cabinet-17/north"


async def in_room(viewer: JanusViewer, present: bool, within_s: float) -> dict[str, int]:
    return await room_publishers(viewer, DISPLAY, present, within_s)


async def uplink_samples(http: aiohttp.ClientSession, agent) -> dict[tuple[str, str], float]:  # noqa: ANN001
    """The agent's /metrics of camera north's uplink: (name, the other label's value or "") -> value."""
    async with http.get(f"{agent.http_url}/metrics", headers={"Authorization": f"Bearer {agent.token}"}) as response:
        text = await response.text()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("edgeagent_uplink_") and sample.labels.get("camera") == "north":
                other = [value for key, value in sample.labels.items() if key != "camera"]
                found[(sample.name, other[0] if other else "")] = sample.value
    return found


def uplink_config(tmp_path, broker, camera, janus: Janus, **uplink):  # noqa: ANN001, ANN201
    config = base_config(tmp_path, broker, {"north": camera}, webrtc={"host_addresses": [janus.netns.uplink.host_ip]})
    secret = write_secret(tmp_path / "secrets" / "janus", JANUS_SECRET)
    config["uplink"] = {"kind": "janus", "url": janus.url, "room": ROOM, "token_file": str(secret), **uplink}
    return config


async def test_the_centre_starts_the_uplink_over_mqtt_and_stops_it_over_http(
    tmp_path, broker, camera_factory, agent_factory, mqtt_watcher_factory, janus
):
    camera = camera_factory(gop_s=1)
    agent = agent_factory(uplink_config(tmp_path, broker, camera, janus, idle_s=120))
    base = f"edgeagent/{agent.agent_id}"
    watcher = mqtt_watcher_factory(f"{base}/#")
    await asyncio.to_thread(watcher.wait_for, f"{base}/cameras/north/status", lambda m: m.payload == b"online", 30)
    viewer = JanusViewer(janus, ROOM)
    headers = {"Authorization": f"Bearer {agent.token}"}
    url = f"{agent.http_url}/cameras/north/uplink"
    async with aiohttp.ClientSession() as http:
        try:
            # Malformed commands are ignored; nothing is published until the centre asks.
            await asyncio.to_thread(watcher.publish, f"{base}/cameras/north/uplink", b"not json")
            await asyncio.to_thread(watcher.publish, f"{base}/cameras/nowhere/uplink", {"action": "start"})
            await asyncio.to_thread(agent.wait_log, r"uplink: command for camera north ignored", 10)
            async with http.get(url, headers=headers) as response:
                assert response.status == 200 and (await response.json())["state"] == "stopped"

            await asyncio.to_thread(watcher.publish, f"{base}/cameras/north/uplink", {"action": "start"})
            feed = (await in_room(viewer, True, within_s=20))[DISPLAY]
            await viewer.subscribe(feed)
            await viewer.wait_frames(25, within_s=15)
            assert looks_like_smpte(summarise_rgb(viewer.last_frame.to_ndarray(format="rgb24")))
            async with http.get(url, headers=headers) as response:
                status = await response.json()
            assert status["state"] == "publishing" and status["publishes_connected"] == 1 and status["bytes_sent"] > 0
            # The same figures in the camera's health and in /metrics.
            async with http.get(f"{agent.http_url}/cameras", headers=headers) as response:
                health = (await response.json())["cameras"][0]["health"]["uplink"]
            assert (health["kind"], health["publishing"], health["wanted"]) == ("janus", True, True), health
            assert 0 < health["idle_stop_in_s"] <= 120 and health["since_start_request_s"] >= 0, health
            samples = await uplink_samples(http, agent)
            assert samples[("edgeagent_uplink_publishing", "janus")] == 1, samples
            assert samples[("edgeagent_uplink_wanted", "")] == 1
            assert samples[("edgeagent_uplink_bytes_sent_total", "")] > 0, samples

            async with http.post(url, json={"action": "stop"}, headers=headers) as response:
                assert response.status == 200
            await in_room(viewer, False, within_s=10)
            samples = await uplink_samples(http, agent)
            assert samples[("edgeagent_uplink_publishing", "janus")] == 0, samples
            assert samples[("edgeagent_uplink_wanted", "")] == 0
            assert ("edgeagent_uplink_idle_stop_seconds", "") not in samples, "a stopped uplink has no lease"
            assert "ERROR" not in agent.log_text()
        finally:
            await viewer.close()


async def test_the_uplink_endpoint_refuses_strangers_and_garbage(tmp_path, camera_factory, agent_factory, janus):
    camera = camera_factory(gop_s=1)
    agent = agent_factory(uplink_config(tmp_path, None, camera, janus))
    await asyncio.to_thread(agent.wait_log, r"agent cabinet-17 running", 30)
    url = f"{agent.http_url}/cameras/north/uplink"
    good = {"Authorization": f"Bearer {agent.token}"}
    async with aiohttp.ClientSession() as http:
        # Four tries without the right token (the HTTP server answers 429 from the sixth wrong one on).
        for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": agent.token}):
            async with http.post(url, json={"action": "start"}, headers=headers) as response:
                assert response.status == 401
        async with http.get(url) as response:
            assert response.status == 401
        cases = [
            (url, b'{"action": "start"}', "text/plain", 415),
            (url, b'{"action": "explode"}', "application/json", 400),
            (url, b"[1, 2", "application/json", 400),
            (url, b'{"action": "start", "pad": "' + b"x" * 4096 + b'"}', "application/json", 413),
            (f"{agent.http_url}/cameras/nowhere/uplink", b'{"action": "start"}', "application/json", 404),
        ]
        for target, body, content_type, expected in cases:
            async with http.post(target, data=body, headers={**good, "Content-Type": content_type}) as response:
                assert response.status == expected, (body[:40], await response.text())
        async with http.get(url, headers=good) as response:
            assert (await response.json())["state"] == "stopped", "no refused request started the uplink"


async def test_an_always_camera_is_published_from_the_start(tmp_path, camera_factory, agent_factory, janus):
    camera = camera_factory(gop_s=1)
    agent_factory(uplink_config(tmp_path, None, camera, janus, always=["north"]))
    viewer = JanusViewer(janus, ROOM)
    try:
        feed = (await in_room(viewer, True, within_s=30))[DISPLAY]
        await viewer.subscribe(feed)
        await viewer.wait_frames(25, within_s=15)
    finally:
        await viewer.close()


async def test_a_reload_ends_a_removed_cameras_publication_and_an_added_camera_can_be_published(
    tmp_path, camera_factory, agent_factory, janus
):
    north, south = camera_factory(gop_s=1), camera_factory(gop_s=1)
    config = uplink_config(tmp_path, None, north, janus)
    agent = agent_factory(config)
    await asyncio.to_thread(agent.wait_log, r"agent cabinet-17 running", 30)
    headers = {"Authorization": f"Bearer {agent.token}"}
    viewer = JanusViewer(janus, ROOM)
    async with aiohttp.ClientSession() as http:
        try:
            async with http.post(f"{agent.http_url}/cameras/north/uplink", json={"action": "start"}, headers=headers):
                pass
            await in_room(viewer, True, within_s=20)

            config["cameras"] = {"south": {"url": south.url, "transport": "tcp", "stall_timeout_s": 5}}
            mark = agent.log_mark()
            agent.write_config(config)
            os.kill(agent.pid, signal.SIGHUP)
            await asyncio.to_thread(agent.wait_log, r"reload: applied in", 30, mark)
            await in_room(viewer, False, within_s=10)  # north is gone, and so is its publication

            url = f"{agent.http_url}/cameras/south/uplink"
            async with http.post(url, json={"action": "start"}, headers=headers) as response:
                assert response.status == 202
            deadline = time.monotonic() + 20
            while "cabinet-17/south" not in (found := await viewer.publishers()):
                assert time.monotonic() < deadline, found
                await asyncio.sleep(0.2)
            await viewer.subscribe(found["cabinet-17/south"])
            await viewer.wait_frames(25, within_s=15)
        finally:
            await viewer.close()
