"""The agent as an operator meets it: a real process, a real RTSP camera, a real broker.

Each test names one behaviour from the operator's side and waits for the event that shows it.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pytest

from tests.support.wait import wait_until

FPS = 25
STALL_S = 3


@dataclass
class Reply:
    status_code: int
    headers: dict
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode()

    def json(self) -> dict:
        return json.loads(self.content)


def http_get(url: str, headers: dict | None = None) -> Reply:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers), error.read())


def health_of(message) -> dict:
    return json.loads(message.payload)


def decode_jpeg(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a valid JPEG"
    return image


def assert_is_test_pattern(image: np.ndarray, masked_box: tuple[int, int, int, int] | None = None) -> None:
    """The SMPTE bars: saturated colours, not a flat grey or green picture; the masked box black."""
    height, width = image.shape[:2]
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    top = hsv[: height // 2]
    saturated = top[..., 1] > 120
    assert saturated.mean() > 0.3, "the picture lacks the test pattern's saturated bars"
    hues = top[..., 0][saturated]
    assert len(np.unique(hues // 20)) >= 4, "too few distinct colours for the test pattern"
    if masked_box is not None:
        x0, y0, x1, y1 = masked_box
        assert image[y0:y1, x0:x1].max() < 40, "the masked region is not black"
        outside = image[:, x1 + 4 :]
        assert outside.max() > 150


@pytest.fixture
def camera(camera_factory):
    return camera_factory(user="viewer", password="cam-secret-4711", fps=FPS, gop_s=1.0)


def camera_entry(camera, **extra) -> dict:
    entry = {
        "url": camera.url_with_user,
        "stall_timeout_s": STALL_S,
        "snapshot": {"interval_s": 2, "width": 320, "quality": 85},
    }
    entry.update(extra)
    return entry


STATUS = "edgeagent/cabinet-17/cameras/north/status"
HEALTH = "edgeagent/cabinet-17/cameras/north/health"


@pytest.fixture
def online_agent(tmp_path, broker, camera, agent_factory, mqtt_watcher_factory, base_config):
    """``online_agent(**camera_settings)``: the agent with camera ``north``, once the camera is online.
    Returns (agent, watcher); the watcher saw everything from before the agent started."""

    def start(**camera_settings):
        watcher = mqtt_watcher_factory("edgeagent/#")
        config = base_config(
            tmp_path, broker,
            cameras={"north": camera_entry(camera, **camera_settings)},
            camera_passwords={"north": "cam-secret-4711"},
        )
        agent = agent_factory(config)
        watcher.wait_for(STATUS, lambda m: m.payload == b"online", timeout=20)
        return agent, watcher

    return start


def test_availability_status_health_and_a_masked_snapshot_arrive_over_tls(
    tmp_path, broker, camera, agent_factory, mqtt_watcher_factory, base_config
):
    watcher = mqtt_watcher_factory("edgeagent/#")
    config = base_config(
        tmp_path,
        broker,
        cameras={"north": camera_entry(camera, privacy_masks=[[0.0, 0.0, 0.25, 0.2]])},
        camera_passwords={"north": "cam-secret-4711"},
        tls=True,
    )
    agent = agent_factory(config)
    base = "edgeagent/cabinet-17"

    watcher.wait_for(f"{base}/availability", lambda m: m.payload == b"online", timeout=20)
    watcher.wait_for(f"{base}/cameras/north/status", lambda m: m.payload == b"online", timeout=20)

    steady = watcher.wait_for(
        f"{base}/cameras/north/health",
        lambda m: health_of(m)["state"] == "online" and health_of(m)["gop_s"] is not None,
        timeout=20,
    )
    health = health_of(steady)
    assert abs(health["fps"] - FPS) <= 0.1 * FPS
    assert (health["codec"], health["width"], health["height"]) == ("h264", 640, 360)
    assert health["bitrate_kbps"] > 0 and abs(health["gop_s"] - 1.0) < 0.1
    assert health["url"] == f"rtsp://viewer:***@127.0.0.1:{camera.port}/stream1"

    agent_health = health_of(watcher.wait_for(f"{base}/health", timeout=20))
    for key in ("version", "uptime_s", "cpu_percent", "rss_bytes", "load", "disk_free_bytes", "temperature_c"):
        assert key in agent_health
    assert agent_health["cameras"]["total"] == 1

    snapshot = watcher.wait_for(f"{base}/cameras/north/snapshot", timeout=20)
    image = decode_jpeg(snapshot.payload)
    assert image.shape[:2] == (180, 320)
    assert_is_test_pattern(image, masked_box=(0, 0, 80, 36))
    following = watcher.wait_for(f"{base}/cameras/north/snapshot", lambda m: m.arrival > snapshot.arrival, timeout=10)
    assert 1.5 <= following.arrival - snapshot.arrival <= 4  # every interval_s (2 s)

    # A client that subscribes later (an operator's dashboard) gets the state from the broker's store.
    late = mqtt_watcher_factory("edgeagent/#")
    for topic, payload in ((f"{base}/availability", b"online"), (f"{base}/cameras/north/status", b"online")):
        assert late.wait_for(topic, lambda m, p=payload: m.payload == p and m.retain, timeout=5)
    assert late.wait_for(f"{base}/cameras/north/snapshot", lambda m: m.retain, timeout=5).payload[:2] == b"\xff\xd8"

    log = agent.log_text()
    assert "cam-secret-4711" not in log and broker.password not in log


def test_http_needs_the_token_and_serves_snapshots(tmp_path, broker, camera, agent_factory, base_config):
    config = base_config(
        tmp_path, broker, cameras={"north": camera_entry(camera)}, camera_passwords={"north": "cam-secret-4711"}
    )
    agent = agent_factory(config)
    agent.wait_log("http: listening", timeout=20)
    url = agent.http_url
    token = agent.http_token

    def snapshot() -> Any:  # the snapshot exists once the first keyframe arrived
        response = http_get(f"{url}/cameras/north/snapshot.jpg", {"Authorization": f"Bearer {token}"})
        assert response.status_code in (200, 503)
        return response if response.status_code == 200 else None

    response = wait_until(snapshot, 20, "the first snapshot", interval=0.2)
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/jpeg"
    assert_is_test_pattern(decode_jpeg(response.content))

    refused = []
    for path in ("/cameras", "/metrics", "/cameras/north/snapshot.jpg"):
        refused.append(http_get(url + path).status_code)
        refused.append(http_get(url + path, {"Authorization": "Bearer wrong-token"}).status_code)
        refused.append(http_get(url + path, {"Authorization": f"Basic {token}"}).status_code)
        assert http_get(url + path, {"Authorization": f"Bearer {token}"}).status_code == 200
    assert refused == [401] * 5 + [429] * 4  # 429 once this address failed five times
    assert http_get(f"{url}/healthz").text == "ok\n"

    cameras = http_get(f"{url}/cameras", {"Authorization": f"Bearer {token}"}).json()
    assert cameras["cameras"][0]["name"] == "north" and cameras["cameras"][0]["status"] == "online"
    metrics = http_get(f"{url}/metrics", {"Authorization": f"Bearer {token}"}).text
    assert 'edgeagent_camera_up{camera="north"} 1.0' in metrics
    assert "edgeagent_camera_fps{" in metrics and "edgeagent_camera_reconnects_total{" in metrics
    assert http_get(f"{url}/cameras/nowhere/snapshot.jpg",
                        {"Authorization": f"Bearer {token}"}).status_code == 404
    assert "cam-secret-4711" not in json.dumps(cameras)


def test_generated_token_is_private_and_not_logged(tmp_path, broker, camera, agent_factory, base_config):
    config = base_config(tmp_path, broker, cameras={}, http_token=False)
    agent = agent_factory(config)
    token_file = tmp_path / "state" / "http-token"
    agent.wait_log("http: listening", timeout=20)
    assert token_file.stat().st_mode & 0o777 == 0o600
    token = token_file.read_text().strip()
    assert len(token) >= 32
    assert token not in agent.log_text()
    assert http_get(f"{agent.http_url}/cameras", {"Authorization": f"Bearer {token}"}).status_code == 200


def test_camera_restarted_after_five_seconds_down_comes_back(camera, online_agent):
    _, watcher = online_agent()
    status = STATUS
    stopped_at = time.monotonic()
    camera.stop()
    offline = watcher.wait_for(status, lambda m: m.payload == b"offline", timeout=STALL_S + 5, since=stopped_at)
    assert offline.arrival - stopped_at <= STALL_S + 1
    time.sleep(5)  # the scenario: the camera stays down for 5 s
    restarted_at = time.monotonic()
    camera.start()
    online = watcher.wait_for(status, lambda m: m.payload == b"online" and m.arrival > restarted_at, timeout=30)
    print(f"online again {online.arrival - restarted_at:.2f} s after the camera returned")
    health = watcher.wait_for(
        HEALTH,
        lambda m: health_of(m)["state"] == "online" and m.arrival > restarted_at,
        timeout=20,
    )
    assert health_of(health)["reconnects_total"] >= 1 and health_of(health)["reconnects_last_hour"] >= 1


def test_frozen_camera_is_found_within_the_stall_timeout(camera, online_agent):
    _, watcher = online_agent()
    status = STATUS
    frozen_at = time.monotonic()
    camera.freeze()
    offline = watcher.wait_for(status, lambda m: m.payload == b"offline", timeout=STALL_S + 5, since=frozen_at)
    print(f"stall found {offline.arrival - frozen_at:.2f} s after the camera froze")
    assert offline.arrival - frozen_at <= STALL_S + 1
    health = watcher.wait_for(
        HEALTH,
        lambda m: health_of(m)["state"] == "offline" and health_of(m)["stalls_total"] >= 1,
        timeout=10,
    )
    assert "stalled" in health_of(health)["last_error"]
    thawed_at = time.monotonic()
    camera.thaw()
    watcher.wait_for(status, lambda m: m.payload == b"online" and m.arrival > thawed_at, timeout=30)


def test_camera_that_appears_late_comes_online(
    tmp_path, broker, camera_factory, agent_factory, mqtt_watcher_factory, base_config
):
    watcher = mqtt_watcher_factory("edgeagent/#")
    camera = camera_factory(start=False)
    config = base_config(tmp_path, broker, cameras={"north": camera_entry(camera, url=camera.url)})
    agent_factory(config)
    status = "edgeagent/cabinet-17/cameras/north/status"
    watcher.wait_for(status, lambda m: m.payload == b"offline", timeout=20)
    time.sleep(10)  # the scenario: the camera is powered on 10 s after the agent
    camera.start()
    watcher.wait_for(status, lambda m: m.payload == b"online", timeout=30)


def test_wrong_camera_password_is_reported_retried_and_never_logged(
    tmp_path, broker, camera, agent_factory, mqtt_watcher_factory, base_config
):
    watcher = mqtt_watcher_factory("edgeagent/#")
    wrong = "not-the-password-0815"
    config = base_config(tmp_path, broker, cameras={"north": camera_entry(camera)}, camera_passwords={"north": wrong})
    agent = agent_factory(config)
    topic = HEALTH
    first = watcher.wait_for(topic, lambda m: health_of(m)["failures_in_row"] >= 1, timeout=20)
    assert "authentication failed" in health_of(first)["last_error"]
    third = watcher.wait_for(topic, lambda m: health_of(m)["failures_in_row"] >= 3, timeout=30)
    # backoff: 1 s then 2 s between the attempts (each less up to 25 % jitter), not a tight loop
    assert third.arrival - first.arrival >= 0.75 * (1 + 2) - 0.2
    assert watcher.messages("edgeagent/cabinet-17/cameras/north/status")[-1].payload == b"offline"
    assert wrong not in agent.log_text()
    assert wrong not in "".join(m.payload.decode(errors="replace") for m in watcher.messages())


def test_broker_restart_brings_availability_and_health_back_within_five_seconds(
    tmp_path, broker, camera, agent_factory, mqtt_watcher_factory, base_config
):
    config = base_config(
        tmp_path, broker, cameras={"north": camera_entry(camera)}, camera_passwords={"north": "cam-secret-4711"},
        health_interval_s=30,
    )
    agent_factory(config)
    watcher = mqtt_watcher_factory("edgeagent/#")
    watcher.wait_for("edgeagent/cabinet-17/cameras/north/status", lambda m: m.payload == b"online", timeout=20)
    broker.stop()
    broker.start()  # no retained messages survive: persistence is off
    returned_at = time.monotonic()
    after = mqtt_watcher_factory("edgeagent/#")
    availability = after.wait_for("edgeagent/cabinet-17/availability", lambda m: m.payload == b"online", timeout=10)
    health = after.wait_for("edgeagent/cabinet-17/health", timeout=10)
    camera_health = after.wait_for(HEALTH, timeout=10)
    for message in (availability, health, camera_health):
        assert message.arrival - returned_at <= 5
    assert health_of(camera_health)["state"] == "online"
    assert health_of(camera_health)["reconnects_total"] == 0  # ingest went on while the broker was away


def test_sigkill_makes_the_broker_deliver_offline(
    tmp_path, broker, agent_factory, mqtt_watcher_factory, base_config
):
    watcher = mqtt_watcher_factory("edgeagent/#")
    agent = agent_factory(base_config(tmp_path, broker, cameras={}))
    watcher.wait_for("edgeagent/cabinet-17/availability", lambda m: m.payload == b"online", timeout=20)
    agent.kill()
    watcher.wait_for("edgeagent/cabinet-17/availability", lambda m: m.payload == b"offline", timeout=10)
    late = mqtt_watcher_factory("edgeagent/#")
    assert late.wait_for("edgeagent/cabinet-17/availability", timeout=5).payload == b"offline"


def test_sigterm_publishes_offline_and_exits_within_five_seconds(online_agent, mqtt_watcher_factory):
    agent, watcher = online_agent()
    code, elapsed = agent.terminate()
    assert code == 0 and elapsed < 5
    watcher.wait_for("edgeagent/cabinet-17/availability", lambda m: m.payload == b"offline", timeout=5)
    late = mqtt_watcher_factory("edgeagent/#")
    assert late.wait_for("edgeagent/cabinet-17/availability", timeout=5).payload == b"offline"
    assert "stopped in" in agent.log_text()


def test_commands_snapshot_request_restart_and_garbage(online_agent):
    agent, watcher = online_agent(snapshot={"interval_s": 3600, "width": 320})
    base = "edgeagent/cabinet-17"
    watcher.wait_for(f"{base}/cameras/north/snapshot", timeout=10)  # the one at start

    asked_at = time.monotonic()
    watcher.publish(f"{base}/cameras/north/snapshot/request", b"")
    answered = watcher.wait_for(f"{base}/cameras/north/snapshot", since=asked_at, timeout=5)
    assert_is_test_pattern(decode_jpeg(answered.payload))

    watcher.publish(f"{base}/cameras/nowhere/restart", b"")
    watcher.publish(f"{base}/cameras/north/snapshot/request", bytes(range(256)) * 100)
    restart_at = time.monotonic()
    watcher.publish(f"{base}/cameras/north/restart", b"")
    watcher.wait_for(
        f"{base}/cameras/north/health",
        lambda m: m.arrival > restart_at and health_of(m)["reconnects_total"] >= 1
        and health_of(m)["state"] == "online",
        timeout=20,
    )
    assert "unknown camera" in agent.log_text()
    assert agent.alive()


@pytest.mark.parametrize(("codec", "transport"), [("h265", "tcp"), ("h264", "udp")])
def test_h265_and_udp_cameras_give_health_and_snapshots(
    tmp_path, broker, camera_factory, agent_factory, mqtt_watcher_factory, base_config, codec, transport
):
    camera = camera_factory(codec=codec, fps=FPS)
    watcher = mqtt_watcher_factory("edgeagent/#")
    config = base_config(
        tmp_path, broker, cameras={"north": camera_entry(camera, url=camera.url, transport=transport)}
    )
    agent_factory(config)
    health = watcher.wait_for(
        HEALTH,
        lambda m: health_of(m)["state"] == "online" and health_of(m)["fps"] > 0,
        timeout=20,
    )
    assert health_of(health)["codec"] == ("hevc" if codec == "h265" else "h264")
    assert health_of(health)["transport"] == transport
    snapshot = watcher.wait_for("edgeagent/cabinet-17/cameras/north/snapshot", timeout=20)
    assert_is_test_pattern(decode_jpeg(snapshot.payload))


def test_camera_that_accepts_and_never_answers_times_out_and_is_retried(
    tmp_path, broker, agent_factory, mqtt_watcher_factory, base_config
):
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []

    def accept_and_say_nothing() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept_and_say_nothing, daemon=True).start()
    try:
        watcher = mqtt_watcher_factory("edgeagent/#")
        port = listener.getsockname()[1]
        config = base_config(
            tmp_path, broker,
            cameras={"north": {"url": f"rtsp://127.0.0.1:{port}/stream1", "open_timeout_s": 2, "stall_timeout_s": 2}},
        )
        agent = agent_factory(config)
        second = watcher.wait_for(HEALTH, lambda m: health_of(m)["failures_in_row"] >= 2, timeout=20)
        assert health_of(second)["last_error"] in (
            "timed out", "no valid answer or data from the camera (timed out or corrupt)"
        )
        assert len(accepted) >= 2 and agent.alive()
    finally:
        listener.close()
        for connection in accepted:
            connection.close()


def test_mutual_tls_to_the_broker(tmp_path, broker, agent_factory, mqtt_watcher_factory, base_config):
    watcher = mqtt_watcher_factory("edgeagent/#")
    agent_factory(base_config(tmp_path, broker, cameras={}, mqtt_mode="mtls"))
    watcher.wait_for("edgeagent/cabinet-17/availability", lambda m: m.payload == b"online", timeout=20)
