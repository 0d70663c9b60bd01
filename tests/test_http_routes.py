"""HTTP routes in process, with aiohttp's test client: the agent's real app on real light parts (a camera
that is never started, a hub fed one real keyframe, the live-view service with no viewer); no subprocess."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from edgeagent.agent import Agent
from edgeagent.camera.packet import Packet, StreamInfo
from edgeagent.config import load_config
from edgeagent.live.service import LiveService

TOKEN = secrets.token_urlsafe(24)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CAMERA_HEALTH_KEYS = [
    "state", "url", "transport", "codec", "width", "height", "fps", "bitrate_kbps", "gop_s", "last_packet_age_s",
    "reconnects_last_hour", "stalls_last_hour", "reconnects_total", "stalls_total", "drops", "last_error",
    "failures_in_row", "retry_in_s", "waiting_for", "snapshots", "picture", "live",
]
LIVE_KEYS = [
    "viewers", "viewers_connected", "bytes_sent", "packets_sent", "packets_dropped", "keyframe_requests",
    "time_to_first_frame_s", "time_to_live_s", "transcoding", "transcoders_started", "transcode",
]


def make_agent(tmp_path: Path, cameras: dict[str, dict[str, str]]) -> Agent:
    document = {
        "agent": {"id": "cabinet-17", "state_dir": str(tmp_path / "state")},
        "http": {"listen": "127.0.0.1:9"},  # never bound: the test server listens instead
        "cameras": cameras,
    }
    path = tmp_path / "edgeagent.yaml"
    path.write_text(yaml.safe_dump(document))
    return Agent(load_config(path))


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[Agent]:
    agent = make_agent(tmp_path, {"north": {"url": "rtsp://viewer@127.0.0.1:9/stream1"}})
    hubs = {name: unit.camera.hub for name, unit in agent.units.items()}
    agent.live = LiveService(agent.config.webrtc, dict(agent.config.cameras), hubs)
    yield agent
    await agent.live.close()
    agent.executor.shutdown(wait=True)


@pytest.fixture
async def client(agent: Agent) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(agent.http_app(SecretStr(TOKEN), agent.live))) as test_client:
        yield test_client


def keyframe_packet(width: int = 320, height: int = 180) -> Packet:
    image = np.full((height, width, 3), (40, 180, 220), np.uint8)
    frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
    frame.pts = 0
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = Fraction(1, 25)
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency"}
    data = b"".join(bytes(p) for p in encoder.encode(frame)) + b"".join(bytes(p) for p in encoder.encode(None))
    stream = StreamInfo("h264", width, height, Fraction(1, 90000), None, 1)
    return Packet(data, 0, 0, True, stream, 1.0)


ROUTES = [
    ("GET", "/metrics", 200),
    ("GET", "/cameras", 200),
    ("GET", "/cameras/north/snapshot.jpg", 503),  # no keyframe yet
    ("POST", "/whep/north", 415),  # no SDP body
    ("DELETE", "/whep/sessions/nobody", 404),
]


@pytest.mark.parametrize(("method", "path", "status"), ROUTES, ids=[path for _, path, _ in ROUTES])
async def test_each_route_is_401_without_the_token_and_answers_with_it(
    client: TestClient, method: str, path: str, status: int
) -> None:
    for headers in ({}, {"Authorization": "Bearer " + "x" * 32}, {"Authorization": f"Basic {TOKEN}"}):
        response = await client.request(method, path, headers=headers)
        assert response.status == 401, headers
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="edgeagent"'
    response = await client.request(method, path, headers=AUTH)
    assert response.status == status
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_healthz_needs_no_token_and_says_degraded_while_a_camera_is_offline(client: TestClient) -> None:
    response = await client.get("/healthz")
    assert (response.status, await response.text()) == (503, "degraded\n")


async def test_healthz_is_ok_when_every_part_is_up(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, {})
    async with TestClient(TestServer(agent.http_app(SecretStr(TOKEN), None))) as client:
        response = await client.get("/healthz")
        assert (response.status, await response.text()) == (200, "ok\n")
        assert response.headers["Server"] == "edgeagent"
    agent.executor.shutdown(wait=True)


async def test_cameras_document_has_every_camera_with_status_and_the_health_keys(client: TestClient) -> None:
    response = await client.get("/cameras", headers=AUTH)
    document = await response.json()
    assert list(document) == ["agent", "cameras"] and document["agent"] == "cabinet-17"
    [camera] = document["cameras"]
    assert list(camera) == ["name", "status", "health"]
    assert (camera["name"], camera["status"]) == ("north", "offline")
    health = camera["health"]
    assert list(health) == CAMERA_HEALTH_KEYS
    assert health["state"] != "online" and health["fps"] == 0.0 and health["gop_s"] is None
    assert health["url"] == "rtsp://viewer:***@127.0.0.1:9/stream1" and health["codec"] is None  # redacted
    assert health["snapshots"] == {"made": 0, "failures": 0}
    assert list(health["live"]) == LIVE_KEYS and health["live"]["viewers"] == 0


async def test_snapshot_is_503_before_a_keyframe_then_a_jpeg(client: TestClient, agent: Agent) -> None:
    response = await client.get("/cameras/north/snapshot.jpg", headers=AUTH)
    assert response.status == 503 and response.headers["Retry-After"] == "2"
    agent.units["north"].camera.hub.publish(keyframe_packet())
    response = await client.get("/cameras/north/snapshot.jpg", headers=AUTH)
    assert response.status == 200 and response.content_type == "image/jpeg"
    assert (await response.read()).startswith(b"\xff\xd8")
    response = await client.get("/cameras/south/snapshot.jpg", headers=AUTH)
    assert response.status == 404


async def test_metrics_read_the_same_health_as_cameras(client: TestClient, agent: Agent) -> None:
    agent.units["north"].camera.hub.publish(keyframe_packet())
    assert (await client.get("/cameras/north/snapshot.jpg", headers=AUTH)).status == 200
    response = await client.get("/metrics", headers=AUTH)
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = await response.text()
    assert 'edgeagent_camera_up{camera="north"} 0.0' in text
    assert 'edgeagent_camera_fps{camera="north"} 0.0' in text
    assert 'edgeagent_camera_packets_total{camera="north"} 1.0' in text
    assert 'edgeagent_snapshots_total{camera="north"} 1.0' in text
    assert 'edgeagent_live_viewers{camera="north"} 0.0' in text
    assert 'edgeagent_camera_last_packet_age_seconds{camera="north"}' in text
    assert "edgeagent_mqtt_connected" not in text  # no broker configured
    document = await (await client.get("/cameras", headers=AUTH)).json()
    assert document["cameras"][0]["health"]["snapshots"]["made"] == 1
