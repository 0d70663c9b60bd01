"""The agent's stop: reverse start order, failures logged (not swallowed), MQTT's offline first."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import pytest
import yaml

from edgeagent import agent as agent_module
from edgeagent.agent import Agent, on_stop
from edgeagent.config import load_config


async def test_cleanups_run_in_reverse_order_and_a_failure_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []

    async def failing() -> None:
        ran.append("live")
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR):
        async with contextlib.AsyncExitStack() as stack:
            on_stop(stack, "executor", lambda: ran.append("executor"))
            on_stop(stack, "live view", failing)
            on_stop(stack, "cameras", lambda: ran.append("cameras"))
    assert ran == ["cameras", "live", "executor"]
    assert "stopping live view failed" in caplog.text and "RuntimeError: boom" in caplog.text


async def test_stop_order_is_tasks_then_mqtt_offline_then_cameras_http_live(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The order of the real ``Agent._start``, with each part's cleanup noted as the stack unwinds."""
    document = {
        "agent": {"id": "cabinet-17", "state_dir": str(tmp_path / "state")},
        "http": {"listen": "127.0.0.1:9"},
        "cameras": {"north": {"url": "rtsp://127.0.0.1:9/stream1"}},
        "mqtt": {"host": "127.0.0.1", "port": 9},
    }
    path = tmp_path / "edgeagent.yaml"
    path.write_text(yaml.safe_dump(document))
    agent = Agent(load_config(path))
    registered: list[str] = []

    def noting(stack: contextlib.AsyncExitStack, what: str, cleanup: object) -> None:
        registered.append(what)

    async def no_http(stack: contextlib.AsyncExitStack, live: object) -> None:
        agent_module.on_stop(stack, "http", lambda: None)

    monkeypatch.setattr(agent_module, "on_stop", noting)
    monkeypatch.setattr(agent, "_start_http", no_http)
    monkeypatch.setattr(agent.mqtt, "start", lambda: None)
    monkeypatch.setattr(agent.units["north"].camera, "start", lambda: None)
    async with contextlib.AsyncExitStack() as stack:
        await agent._start(stack)
    assert agent.live is not None
    await agent.live.close()
    await agent.tasks.cancel_all()
    agent.executor.shutdown(wait=True)
    stops = list(reversed(registered))
    assert stops == ["background tasks", "mqtt", "cameras", "http", "live view", "snapshot executor"]
