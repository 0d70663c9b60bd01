"""Fixtures with real parts: a GStreamer RTSP camera, a mosquitto broker, an MQTT watcher, the agent process.

Every fixture cleans up what it started, even when the test fails. See tests/support/ for the helpers.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `pytest` (not `python -m pytest`) does not put the repo root on sys.path
    sys.path.insert(0, str(ROOT))

from tests.support import (  # noqa: E402
    AgentProcess,
    Broker,
    Camera,
    MqttWatcher,
    TlsFiles,
    make_tls_files,
)
from tests.support import agent as _agent  # noqa: E402
from tests.support.janus import janus, netns  # noqa: E402, F401 - fixtures: Janus in a network namespace


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """CA, server (127.0.0.1/localhost) and client certificates; made once per test session."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def camera_factory(tmp_path: Path) -> Iterator[Callable[..., Camera]]:
    """``camera_factory(codec="h264", width=640, height=360, fps=25, gop_s=1.0, user=None, password=None,
    port=None, path="/stream1", bitrate_kbps=None, preset=None, pattern="smpte", file=None, start=True)``
    returns a ``Camera`` that has printed READY (unless ``start=False``). All are killed at teardown."""
    cameras: list[Camera] = []

    def make(*, start: bool = True, **kwargs: Any) -> Camera:
        kwargs.setdefault("log_path", tmp_path / f"camera{len(cameras)}.log")
        cam = Camera(**kwargs)
        cameras.append(cam)
        return cam.start() if start else cam

    yield make
    for cam in cameras:
        cam.close()


@pytest.fixture
def camera(camera_factory: Callable[..., Camera]) -> Camera:
    """One default camera: H.264 640x360 at 25 fps, 1 s GOP, no auth."""
    return camera_factory()


@pytest.fixture
def broker(tmp_path: Path, tls_files: TlsFiles) -> Iterator[Broker]:
    """A running mosquitto with password auth: ``port`` (plain), ``tls_port``, ``mtls_port``."""
    b = Broker(tmp_path / "mosquitto", tls_files)
    try:
        b.start()
        yield b
    finally:
        b.kill()


@pytest.fixture
def mqtt_watcher_factory(broker: Broker) -> Iterator[Callable[..., MqttWatcher]]:
    """``mqtt_watcher_factory(topic_filter="#", tls=None, username=None, password=None)`` returns a
    connected ``MqttWatcher`` whose subscription is acknowledged. All are closed at teardown."""
    watchers: list[MqttWatcher] = []

    def make(topic_filter: str = "#", **kwargs: Any) -> MqttWatcher:
        w = MqttWatcher(broker, topic_filter, **kwargs)
        watchers.append(w)
        return w.start()

    yield make
    for w in watchers:
        w.close()


@pytest.fixture
def base_config() -> Callable[..., dict[str, Any]]:
    """``tests.support.base_config`` as a fixture: ``base_config(tmp_path, broker, cameras, ...)``."""
    return _agent.base_config


@pytest.fixture
def agent_factory(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    """``agent_factory(config, env=None, start=True, name="agent", args=None)`` writes the config to
    tmp_path/NAME.yaml and starts ``python -m edgeagent run -c FILE`` (output in tmp_path/NAME.log).
    Every agent still running at teardown is killed; its log is printed when the test failed."""
    agents: list[AgentProcess] = []

    def make(
        config: dict[str, Any],
        *,
        env: dict[str, str] | None = None,
        start: bool = True,
        name: str | None = None,
        args: list[str] | None = None,
    ) -> AgentProcess:
        a = AgentProcess(config, tmp_path, env=env, name=name or f"agent{len(agents) or ''}", args=args)
        agents.append(a)
        return a.start() if start else a

    yield make
    for a in agents:
        a.close()
        text = a.log_text()
        if text:
            # Shown by pytest in the "Captured stdout teardown" section of a failing test only.
            print(f"----- {a.name} output (last 4000 chars) -----\n{text[-4000:]}")
