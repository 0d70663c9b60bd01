"""Start-up against a full disk or a taken port: one clear line, no traceback; a disk that fills while
running is reported, and nothing stops."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.disk import tmpfs


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 kB tmpfs, as a cabinet's nearly full flash card would be."""
    with tmpfs(tmp_path / "disk", "256k") as mount_point:
        yield mount_point


def fill(directory: Path) -> None:
    with open(directory / "filler", "wb") as file:
        try:
            while True:
                file.write(b"\0" * 65536)
                file.flush()
        except OSError:
            pass


def run_agent(config_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgeagent", "run", "-c", str(config_path)], capture_output=True, text=True, timeout=60
    )


def test_full_disk_at_first_start_is_one_clear_line(tmp_path: Path, tiny_disk: Path, base_config) -> None:
    state = tiny_disk / "state"
    state.mkdir()
    fill(tiny_disk)
    config = base_config(tmp_path, None, cameras={}, http_token=False, state_dir=str(state))
    config_path = tmp_path / "edgeagent.yaml"
    config_path.write_text(yaml.safe_dump(config))
    result = run_agent(config_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == f"edgeagent: cannot start: No space left on device: {state / 'http-token'}"
    assert "Traceback" not in result.stderr


def test_taken_port_is_one_clear_line(tmp_path: Path, base_config) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = base_config(tmp_path, None, cameras={}, listen=f"127.0.0.1:{port}")
        config_path = tmp_path / "edgeagent.yaml"
        config_path.write_text(yaml.safe_dump(config))
        result = run_agent(config_path)
    assert result.returncode == 1
    assert "cannot start" in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr


def test_disk_filling_while_running_is_reported_and_the_agent_carries_on(
    tmp_path: Path, tiny_disk: Path, broker, camera, agent_factory, mqtt_watcher_factory, base_config
) -> None:
    watcher = mqtt_watcher_factory("edgeagent/#")
    config = base_config(tmp_path, broker, cameras={"north": camera}, health_interval_s=1, state_dir=str(tiny_disk))
    agent = agent_factory(config)
    health = watcher.wait_for("edgeagent/cabinet-17/health", lambda m: json.loads(m.payload)["cameras"]["online"])
    assert json.loads(health.payload)["disk_free_bytes"] > 64 * 1024
    token_before = (tiny_disk / "http-token").read_bytes() if (tiny_disk / "http-token").exists() else None
    fill(tiny_disk)
    full = watcher.wait_for(
        "edgeagent/cabinet-17/health", lambda m: json.loads(m.payload)["disk_free_bytes"] == 0, timeout=10
    )
    assert json.loads(full.payload)["cameras"]["online"] == 1
    watcher.wait_for("edgeagent/cabinet-17/cameras/north/snapshot", since=full.arrival, timeout=15)
    assert agent.alive()
    if token_before is not None:  # what was stored stays as it was
        assert (tiny_disk / "http-token").read_bytes() == token_before
