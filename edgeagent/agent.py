"""Wiring: builds every part from the configuration and owns their lifetimes.

Each part registers its cleanup on the agent's ``AsyncExitStack`` as it starts, so the stop runs in
reverse start order and a failing cleanup is logged, not swallowed, while the others still run. The
start order is chosen so that the reverse is the stop the operators need: the background tasks end,
then MQTT says ``offline`` (operators see the truth at once), then cameras, HTTP, live view, executor.

Cameras are the exception to "built once": each one starts and stops through
:class:`edgeagent.camera_units.CameraUnits`, at start and stop and on a configuration reload (SIGHUP,
:mod:`edgeagent.reload`), so a camera added, removed or changed touches nothing of the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import web
from pydantic import SecretStr

from edgeagent import loops, reload, systemd
from edgeagent.alarms import Alarms
from edgeagent.camera.source import CameraSource
from edgeagent.camera_units import CameraUnits
from edgeagent.commands import MqttCommands
from edgeagent.config import Config
from edgeagent.credentials import read_credentials
from edgeagent.health import AgentHealthMonitor, CameraHealth, camera_health, cameras_document
from edgeagent.live.service import LiveService
from edgeagent.live.whep import add_routes as add_whep_routes
from edgeagent.onvif.control import PtzControl
from edgeagent.publish import alarms_http, descriptors, http_limits, http_log_filter, metrics, topics
from edgeagent.publish.auth_guard import AuthGuard
from edgeagent.publish.command_limits import CommandLimits, SnapshotCoalescer
from edgeagent.publish.http import load_or_create_token, make_app, ssl_context
from edgeagent.publish.mqtt import MqttPublisher
from edgeagent.publish.mqtt_bridge import MqttBridge
from edgeagent.publish.offload_metrics import OffloadCollector
from edgeagent.publish.ptz_http import add_routes as add_ptz_routes
from edgeagent.publish.uplink_metrics import UplinkCollector
from edgeagent.recordings import AgentRecordings
from edgeagent.unit import CameraUnit, build_unit
from edgeagent.uplink.routes import add_routes as add_uplink_routes
from edgeagent.uplink.service import UplinkService

log = logging.getLogger(__name__)

SHUTDOWN_JOIN_S = 2.0


def on_stop(stack: contextlib.AsyncExitStack, what: str, cleanup: Callable[[], Awaitable[object] | None]) -> None:
    """Run ``cleanup`` when the stack unwinds; a failure is logged with its traceback, and the stop goes on."""

    async def run() -> None:
        try:
            result = cleanup()
            if result is not None:
                await result
        except Exception:
            log.exception("stopping %s failed", what)

    stack.push_async_callback(run)


class Agent:
    def __init__(self, config: Config, config_path: Path | None = None) -> None:
        self.config = config
        self.config_path = config_path  # read again on SIGHUP
        self.credentials = read_credentials(config)
        # Keyframe decodes for snapshots: bounded, so many cameras cannot take every core at once.
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="snapshot")
        self.tasks = loops.BackgroundTasks()
        events = self._publish_event if config.mqtt is not None else None  # ONVIF events to MQTT (and see CameraUnits)
        self.cameras = CameraUnits(
            self.tasks,
            self._publish_camera_state,
            self.publish_snapshot,
            lambda unit: self.alarms.refresh(unit),
            events,
        )
        self.units = self.cameras.units  # the cameras of the moment: started in _start_cameras
        for name, section in config.cameras.items():
            self.units[name] = build_unit(name, section, self.credentials.camera_passwords[name], self.executor)
        self.mqtt: MqttPublisher | None = None
        self.bridge: MqttBridge | None = None
        if config.mqtt is not None:
            self.mqtt = MqttPublisher(config.mqtt, self.credentials.mqtt_password, config.agent.id)
            self.bridge = MqttBridge(self.mqtt, self.units, config.mqtt.snapshot_retain)
        self.recordings: AgentRecordings | None = None
        if config.recording is not None:
            self.recordings = self.cameras.recording = AgentRecordings(
                config.recording, config.agent.id, self.bridge, config.offload
            )
        marks = self.recordings.alarms_changed if self.recordings is not None else None  # picture alarms: bookmarks
        self.alarms = Alarms(self.bridge.publish_alarms if self.bridge is not None else None, on_change=marks)
        self.monitor = AgentHealthMonitor(config.agent.state_dir)
        self.live: LiveService | None = None
        # Descriptors: the soft limit raised to the hard one; HTTP gets a share that leaves the reserve.
        nofile = descriptors.raise_nofile_limit()
        reserve = descriptors.descriptor_reserve(len(self.units), config.webrtc.max_viewers_total)
        self.connections = http_limits.ConnectionGuard(http_limits.ConnectionLimits.for_descriptors(nofile, reserve))
        self.accept_health = descriptors.AcceptHealth(nofile, reserve)
        self.auth: AuthGuard | None = None
        self.commands = CommandLimits(max_offers_in_flight=min(4, config.webrtc.max_viewers_total))
        self.mqtt_commands = MqttCommands(self)
        self.snapshot_requests = SnapshotCoalescer(self.mqtt_commands.requested_snapshot)
        self._health_task: asyncio.Task[None] | None = None
        self.uplink: UplinkService | None = None
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()

    # -- state for publishers ---------------------------------------------------------------------

    def camera_health(self, name: str) -> CameraHealth:
        live = self.live.camera_stats(name) if self.live is not None else None
        recording = self.recordings.camera_health(name) if self.recordings is not None else None
        uplink = self.uplink.camera_health(name) if self.uplink is not None else None
        return camera_health(self.units[name], live, recording, uplink)

    def cameras_health(self) -> dict[str, CameraHealth]:
        return {name: self.camera_health(name) for name in self.units}

    def healthy(self) -> bool:
        mqtt_ok = self.mqtt is None or self.mqtt.connected
        cameras_ok = all(unit.camera.online for unit in self.units.values())
        return mqtt_ok and cameras_ok and self.accept_health.problem() is None

    def guard_figures(self) -> dict[str, float]:
        auth, connections = self.auth, self.connections
        return {
            "auth_failures": auth.failures_total if auth else 0,
            "auth_throttled": auth.throttled_total if auth else 0,
            "connections_open": connections.open,
            "connections_refused": connections.refused_total,
            "connections_evicted": connections.evicted_total,
            "accept_errors": self.accept_health.accept_errors_total,
            "free_descriptors": self.accept_health.free_descriptors(),
        }

    def commands_refused(self) -> dict[str, int]:
        refused = dict(self.commands.refused)
        refused["snapshot"] = self.snapshot_requests.coalesced
        if self.mqtt is not None:
            refused["flood_or_long_topic"] = self.mqtt.commands_dropped
        return refused

    # -- MQTT -------------------------------------------------------------------------------------

    def _publish_camera_state(self, source: CameraSource) -> None:
        unit = self.units.get(source.name)
        if unit is None or unit.camera.source is not source:  # a source stopping after a reload replaced it
            return
        self.alarms.refresh(unit)
        if self.bridge is not None:
            self.bridge.publish_camera(source.name, self.camera_health(source.name))

    def _publish_health(self) -> None:
        if self.recordings is not None:
            self.recordings.refresh()  # its figures and topics (in a thread: SQLite)
        if self.bridge is None:
            return
        cameras = self.cameras_health()
        agent = self.monitor.measure(list(cameras.values()))
        if self.mqtt is not None:
            agent = dataclasses.replace(agent, mqtt=self.mqtt.health())
        if self.recordings is not None:
            agent = dataclasses.replace(agent, recording=self.recordings.summary())
        self.bridge.publish_health(cameras, agent)

    async def publish_snapshot(self, unit: CameraUnit) -> bool:
        snapshot = await unit.snapshotter.snapshot()
        if snapshot is None:
            return False
        if self.bridge is not None:
            self.bridge.publish_snapshot(unit.name, snapshot.jpeg)
        return True

    def _publish_event(self, camera: str, event: dict[str, object]) -> None:
        if self.bridge is not None:
            topic = topics.CAMERA_EVENTS
            body = json.dumps(event, separators=(",", ":")).encode()
            self.bridge.publisher.publish(topic.under(self.bridge.base, camera=camera), body, qos=topic.qos)

    def ptz_control(self, camera: str) -> PtzControl | None:
        unit = self.units.get(camera)  # the cameras of the moment (a reload may change them)
        return unit.ptz if unit is not None else None

    # -- lifetime ---------------------------------------------------------------------------------

    def _start_live(self, stack: contextlib.AsyncExitStack) -> LiveService:
        live = self.live = self.cameras.live = LiveService(self.config.webrtc, {}, {})  # cameras join as they start
        on_stop(stack, "live view", live.close)
        return live

    async def _start_uplink(self, stack: contextlib.AsyncExitStack) -> None:
        if self.config.uplink is None:
            return
        uplink = UplinkService(self.config.uplink, self.config.webrtc, self.config.agent.id)
        self.uplink = self.cameras.uplink = uplink  # cameras join as they start, also on a reload
        on_stop(stack, "uplink", uplink.close)
        await uplink.start()

    def http_app(self, token: SecretStr, live: LiveService | None) -> web.Application:
        """The HTTP side, every route on the same health records as MQTT (in-process tests build this)."""
        mqtt = self.mqtt
        collector = metrics.AgentCollector(
            self.cameras_health,
            live=live is not None,
            mqtt=mqtt.health if mqtt else None,
            guards=self.guard_figures,
            commands_refused=self.commands_refused if mqtt else None,
            recording=self.recordings.summary if self.recordings else None,
        )
        registry = metrics.make_registry(collector)
        if self.recordings is not None and self.recordings.offloader is not None:
            registry.register(OffloadCollector(self.recordings.offloader.stats))
        if self.uplink is not None:
            registry.register(UplinkCollector(self.uplink.health))
        self.auth = AuthGuard(token)
        app = make_app(
            self.units,
            token,
            lambda: cameras_document(self.config.agent.id, self.cameras_health()),
            lambda: metrics.render(registry),
            self.healthy,
            connections=self.connections,
            auth=self.auth,
        )
        alarms_http.add_routes(app, self.alarms.reset)
        if live is not None:
            add_whep_routes(app, live)
        if self.uplink is not None:
            add_uplink_routes(app, self.uplink)
        add_ptz_routes(app, self.ptz_control)
        if self.recordings is not None:
            self.recordings.add_http_routes(app, list(self.units), token)
        return app

    async def _start_http(self, stack: contextlib.AsyncExitStack, live: LiveService) -> None:
        section = self.config.http
        token = load_or_create_token(section, self.config.agent.state_dir, self.credentials.http_token)
        app = self.http_app(token, live)
        http_log_filter.install()
        self.accept_health.install(asyncio.get_running_loop())
        # keepalive_timeout runs from the connection's start too: it bounds the wait for a request head.
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, keepalive_timeout=http_limits.HEAD_TIMEOUT_S
        )
        await runner.setup()
        on_stop(stack, "http", runner.cleanup)
        site = http_limits.GuardedSite(runner, self.connections, section.host, section.port, ssl_context(section))
        await site.start()
        limits, health = self.connections.limits, self.accept_health
        log.info(
            "http: listening on %s://%s (at most %d connections, %d per address; %d descriptors, %d in reserve)",
            "https" if section.tls else "http", section.listen, limits.total, limits.per_address,
            health.nofile, health.reserve,
        )  # fmt: skip

    def _start_cameras(self, stack: contextlib.AsyncExitStack) -> None:
        on_stop(stack, "cameras", lambda: self.cameras.stop_all(SHUTDOWN_JOIN_S))
        for unit in list(self.units.values()):
            self.cameras.start(unit)

    def request_reload(self) -> None:
        """SIGHUP (``systemctl reload``): read the configuration file again; several coalesce into one."""
        self._reload.set()

    def restart_health_loop(self) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
        health = loops.every(self.config.agent.health_interval_s, self._publish_health, "publishing health")
        self._health_task = self.tasks.spawn(health, "health")

    def _start_tasks(self, stack: contextlib.AsyncExitStack) -> None:
        def stop_background() -> Awaitable[None]:
            self.snapshot_requests.close()  # requested snapshots are background work too
            return self.tasks.cancel_all()

        on_stop(stack, "background tasks", stop_background)
        self.restart_health_loop()
        self.tasks.spawn(reload.serve(self, self._reload), "reloads")
        watchdog = systemd.watchdog_interval_s()
        if watchdog:
            self.tasks.spawn(loops.watchdog(watchdog, self.accept_health.problem), "watchdog")

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        # What can fail at start (a full disk, a taken port) fails first, before anything is announced.
        self.config.agent.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        on_stop(stack, "snapshot executor", lambda: self.executor.shutdown(wait=False, cancel_futures=True))
        if self.recordings is not None:  # the index for the HTTP routes; the recorders start with the cameras
            on_stop(stack, "recording", self.recordings.close)
            await self.recordings.start(self.config.agent.state_dir)
            self.recordings.publish_key()
        live = self._start_live(stack)
        await self._start_uplink(stack)
        await self._start_http(stack, live)
        if self.bridge is not None:
            self.bridge.announce_offline()  # kept until the broker is reached
            self.mqtt_commands.route(self.bridge)
        self._start_cameras(stack)
        if self.mqtt is not None:
            self.mqtt.start()
            on_stop(stack, "mqtt", self.mqtt.stop)  # first of the stops after the tasks: offline at once
        self._start_tasks(stack)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        async with contextlib.AsyncExitStack() as stack:
            await self._start(stack)
            systemd.notify("READY=1")
            log.info("agent %s running with %d camera(s)", self.config.agent.id, len(self.units))
            await self._stop.wait()
            started = time.monotonic()
            systemd.notify("STOPPING=1")
            log.info("stopping")
        log.info("stopped in %.2f s", time.monotonic() - started)

    def request_stop(self) -> None:
        """Stop the agent (SIGTERM, SIGINT): ``run`` unwinds every part and returns."""
        self._stop.set()
