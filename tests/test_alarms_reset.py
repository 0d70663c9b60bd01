"""The alarms reset: the agent's rate limit and publishing (pure logic), and POST /cameras/<cam>/alarms/reset
in process on the agent's real HTTP app (a camera that is never started: offline)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from edgeagent.agent import Agent
from edgeagent.alarms import RESET_MIN_INTERVAL_S, Alarms
from edgeagent.config import load_config
from edgeagent.unit import CameraUnit

TOKEN = secrets.token_urlsafe(24)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def make_agent(tmp_path: Path) -> Agent:
    document = {
        "agent": {"id": "cabinet-17", "state_dir": str(tmp_path / "state")},
        "http": {"listen": "127.0.0.1:9"},  # never bound: the test server listens instead
        "cameras": {"north": {"url": "rtsp://viewer@127.0.0.1:9/stream1"}},
    }
    path = tmp_path / "edgeagent.yaml"
    path.write_text(yaml.safe_dump(document))
    return Agent(load_config(path))


class Resets:
    """Counts the picture resets of one unit (the real reset still runs)."""

    def __init__(self, unit: CameraUnit) -> None:
        self.count = 0
        watch = unit.snapshotter.picture
        real = watch.reset

        def reset() -> None:
            self.count += 1
            real()

        watch.reset = reset  # type: ignore[method-assign]


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[Agent]:
    agent = make_agent(tmp_path)
    yield agent
    agent.executor.shutdown(wait=True)


@pytest.fixture
async def client(agent: Agent) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(agent.http_app(SecretStr(TOKEN), None))) as test_client:
        yield test_client


async def test_reset_route_needs_the_token(agent: Agent, client: TestClient) -> None:
    resets = Resets(agent.units["north"])
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {TOKEN}"}):
        response = await client.post("/cameras/north/alarms/reset", headers=headers)
        assert response.status == 401, headers
    assert resets.count == 0


async def test_reset_route_resets_answers_the_alarms_and_refuses_a_second_reset_too_soon(
    agent: Agent, client: TestClient
) -> None:
    resets = Resets(agent.units["north"])
    response = await client.post("/cameras/north/alarms/reset", headers=AUTH)
    assert response.status == 200
    document = await response.json()
    assert document["camera"] == "north"
    assert document["alarms"]["active"] == ["offline"]  # never started
    assert resets.count == 1

    again = await client.post("/cameras/north/alarms/reset", headers=AUTH)
    assert again.status == 429
    assert 1 <= int(again.headers["Retry-After"]) <= RESET_MIN_INTERVAL_S
    assert resets.count == 1


async def test_reset_route_for_an_unknown_camera_is_404(client: TestClient) -> None:
    response = await client.post("/cameras/nowhere/alarms/reset", headers=AUTH)
    assert response.status == 404
    response = await client.get("/cameras/north/alarms/reset", headers=AUTH)
    assert response.status == 405


def test_refresh_publishes_only_changes_and_reset_always_publishes(tmp_path: Path) -> None:
    unit = make_agent(tmp_path).units["north"]
    published: list[tuple[str, dict[str, Any]]] = []
    now = [100.0]
    alarms = Alarms(lambda camera, document: published.append((camera, document)), clock=lambda: now[0])

    alarms.refresh(unit)
    alarms.refresh(unit)  # nothing changed: nothing published
    assert [(camera, document["active"]) for camera, document in published] == [("north", ["offline"])]

    assert alarms.reset(unit, "test") == 0.0
    assert len(published) == 2  # the same document: the reset is acknowledged all the same
    now[0] += RESET_MIN_INTERVAL_S - 1
    assert alarms.reset(unit, "test") == pytest.approx(1.0)
    assert len(published) == 2
    now[0] += 1
    assert alarms.reset(unit, "test") == 0.0
    assert len(published) == 3
