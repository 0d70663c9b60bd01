"""Fixtures with real parts: a GStreamer RTSP camera, a mosquitto broker, an MQTT watcher, the agent process.

Every fixture cleans up what it started, even when the test fails. See tests/support/ for the helpers.

Two kinds of test, told apart by the ``real`` marker, which nobody writes by hand: a test whose code or
fixtures start a process (tests/support/classify.py says how that is read) gets it at collection. Every
other test is refused a process while it runs, so a fast run (``make test-fast``, ``-m "not real"``)
never waits on one. Async tests run under blockbuster, which fails a test whose product code blocks the
event loop.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from blockbuster import BlockBuster, blockbuster_ctx

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
from tests.support.browser import chromium  # noqa: E402
from tests.support.classify import starts_processes  # noqa: E402
from tests.support.janus import janus, netns  # noqa: E402, F401 - fixtures: Janus in a network namespace
from tests.support.process import ManagedProcess  # noqa: E402
from tests.support.uplink import uplink_rig  # noqa: E402, F401 - fixture: the uplink in-process with a camera

# What starts a process, besides the subprocess module itself (see tests/support/classify.py).
PROCESS_STARTERS: tuple[Any, ...] = (Camera, Broker, AgentProcess, ManagedProcess, chromium, make_tls_files)


def _is_real(item: pytest.Item) -> bool:
    function = getattr(item, "function", None)
    if function is not None and starts_processes(function, PROCESS_STARTERS):
        return True
    fixture_info = getattr(item, "_fixtureinfo", None)
    for name, definitions in getattr(fixture_info, "name2fixturedefs", {}).items():
        # The project's fixtures only (pytest's own do not start processes), and not the guard below.
        ours = [d.func for d in definitions if _is_ours(d.func) and name != "forbid_processes"]
        if any(starts_processes(func, PROCESS_STARTERS) for func in ours):
            return True
    return False


def _is_ours(func: Any) -> bool:
    module = getattr(func, "__module__", "") or ""
    return module == "conftest" or module.startswith(("tests", "test_"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("real") is None and _is_real(item):
            item.add_marker(pytest.mark.real)


@pytest.fixture(autouse=True)
def forbid_processes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test without the ``real`` marker may not start a process: the fast set stays fast, and a test
    the classification missed fails here (mark it ``@pytest.mark.real``) instead of slowing that set."""
    if request.node.get_closest_marker("real") is not None:
        return
    name = request.node.nodeid

    def refuse(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        raise AssertionError(
            f"{name} started a process ({args!r}) but is not marked real: see tests/support/classify.py"
        )

    monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse)


@pytest.fixture(autouse=True)
def no_blocking_on_the_loop(request: pytest.FixtureRequest) -> Iterator[BlockBuster | None]:
    """Every async test runs under blockbuster: a blocking call (file or socket I/O, time.sleep, a
    contended lock, sqlite...) made on the event loop from edgeagent's code fails the test with
    BlockingError. Only calls with an edgeagent frame on the stack count, so a test may block in its own
    set-up; work the product hands to a thread is not on the loop and is not checked. A test that must
    call a blocking product API from its coroutine says why: ``@pytest.mark.blocking_ok("reason")``."""
    if not inspect.iscoroutinefunction(getattr(request.node, "function", None)):
        yield None
        return
    opt_out = request.node.get_closest_marker("blocking_ok")
    if opt_out is not None:
        if not (opt_out.args and isinstance(opt_out.args[0], str) and opt_out.args[0].strip()):
            raise pytest.UsageError(f"{request.node.nodeid}: @pytest.mark.blocking_ok needs the reason as text")
        yield None
        return
    with blockbuster_ctx(scanned_modules=["edgeagent"]) as detector:
        for calls, filename, functions in BLOCKING_ALLOWED + BLOCKING_KNOWN:
            for name, function in detector.functions.items():
                if calls is None or name in calls:
                    function.can_block_in(filename, functions)
        yield detector


# (blocking calls or None for any, file, functions on the stack): where edgeagent may block on the loop.
# Each entry says why that is no fault.
BLOCKING_ALLOWED: list[tuple[set[str] | None, str, set[str]]] = [
    # The configuration (and the secret files it names) is read once, before the event loop runs
    # (edgeagent/cli.py calls load_config, then asyncio.run); in-process tests build their agent with it.
    (None, "edgeagent/config.py", {"load_config"}),
    # The agent's own CPU and memory come from psutil, which reads /proc: kernel memory, a few hundred
    # bytes, nothing to wait on.
    ({"io.BufferedReader.read", "io.TextIOWrapper.read"}, "edgeagent/health.py", {"__init__", "measure"}),
    # Counting open descriptors lists /proc/self/fd: kernel memory as well.
    ({"os.listdir"}, "edgeagent/publish/descriptors.py", {"open_descriptors"}),
]
# Blocking calls on the loop that are faults still to fix (reported to the integrator); each is allowed
# only for the one call and function it is, so that anything new still fails.
BLOCKING_KNOWN: list[tuple[set[str] | None, str, set[str]]] = [
    # Agent._start creates state_dir on the loop (a one-off at start-up, but a slow disk stalls it).
    ({"os.mkdir", "os.stat"}, "edgeagent/agent.py", {"_start"}),
    # make_app looks for web/index.html and add_static stats the directory, on the loop, at start-up.
    ({"os.stat", "os.path.islink", "os.path.abspath"}, "edgeagent/publish/http.py", {"make_app"}),
]


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
