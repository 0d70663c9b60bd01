"""Wiring: builds every part from the configuration, owns their lifetimes and the order of shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from edgeagent import systemd
from edgeagent.camera.camera import Camera
from edgeagent.camera.source import CameraSource
from edgeagent.config import Config, read_secret
from edgeagent.health import AgentHealth
from edgeagent.live.service import LiveService
from edgeagent.live.signaling import handle_mqtt_offer
from edgeagent.live.whep import add_routes as add_whep_routes
from edgeagent.publish import metrics
from edgeagent.publish.http import load_or_create_token, make_app, ssl_context
from edgeagent.publish.mqtt import MqttPublisher

log = logging.getLogger(__name__)

SHUTDOWN_JOIN_S = 2.0


class Agent:
    def __init__(self, config: Config) -> None:
        self.config = config
        # Keyframe decodes for snapshots: bounded, so many cameras cannot take every core at once.
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="snapshot")
        self.cameras: dict[str, Camera] = {}
        for name, section in config.cameras.items():
            password = read_secret(section.password_file, section.password_env, f"cameras.{name}.password_file")
            self.cameras[name] = Camera(name, section, password, self.executor)
        self.mqtt: MqttPublisher | None = None
        if config.mqtt is not None:
            password = read_secret(config.mqtt.password_file, config.mqtt.password_env, "mqtt.password_file")
            self.mqtt = MqttPublisher(config.mqtt, password, config.agent.id)
        self.agent_health = AgentHealth(config.agent.state_dir)
        self.live: LiveService | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None

    # -- state for publishers ---------------------------------------------------------------------

    def live_stats(self, camera: str) -> dict[str, Any] | None:
        return self.live.camera_stats(camera) if self.live is not None else None

    def camera_health(self, name: str) -> dict[str, Any]:
        return self.cameras[name].health(self.live_stats(name))

    def cameras_document(self) -> dict[str, Any]:
        return {
            "agent": self.config.agent.id,
            "cameras": [
                {"name": name, "status": "online" if camera.online else "offline", "health": self.camera_health(name)}
                for name, camera in self.cameras.items()
            ],
        }

    def healthy(self) -> bool:
        mqtt_ok = self.mqtt is None or self.mqtt.connected
        return mqtt_ok and all(camera.online for camera in self.cameras.values())

    # -- MQTT -------------------------------------------------------------------------------------

    def _publish_camera_state(self, source: CameraSource) -> None:
        if self.mqtt is None:
            return
        camera = self.cameras[source.name]
        self.mqtt.set_state(self.mqtt.topic("cameras", source.name, "status"), "online" if camera.online else "offline")
        self._publish_camera_health(source.name)

    def _publish_camera_health(self, name: str) -> None:
        assert self.mqtt is not None
        payload = json.dumps(self.camera_health(name), separators=(",", ":"))
        self.mqtt.set_state(self.mqtt.topic("cameras", name, "health"), payload, retain=False, qos=0)

    def _publish_health(self) -> None:
        cameras = {name: self.camera_health(name) for name in self.cameras}
        if self.mqtt is None:
            return
        for name in cameras:
            self._publish_camera_health(name)
        payload = json.dumps(self.agent_health.snapshot(cameras), separators=(",", ":"))
        self.mqtt.set_state(self.mqtt.topic("health"), payload, retain=False, qos=0)

    async def _publish_snapshot(self, camera: Camera) -> bool:
        snapshot = await camera.snapshotter.snapshot()
        if snapshot is None:
            return False
        if self.mqtt is not None:
            topic = self.mqtt.topic("cameras", camera.name, "snapshot")
            self.mqtt.set_state(topic, snapshot.jpeg, retain=True, qos=0)
        return True

    def _camera_for_command(self, topic: str) -> Camera | None:
        assert self.mqtt is not None
        parts = topic.removeprefix(self.mqtt.base + "/").split("/")
        camera = self.cameras.get(parts[1]) if len(parts) > 2 and parts[0] == "cameras" else None
        if camera is None:
            log.warning("mqtt: ignoring a command for an unknown camera on %r", topic[:200])
        return camera

    async def _on_snapshot_request(self, topic: str, payload: bytes) -> None:
        camera = self._camera_for_command(topic)
        if camera is not None:
            await self._publish_snapshot(camera)

    def _on_restart(self, topic: str, payload: bytes) -> None:
        camera = self._camera_for_command(topic)
        if camera is not None:
            camera.source.restart()

    # -- periodic work ----------------------------------------------------------------------------

    async def _health(self) -> None:
        while True:
            try:
                self._publish_health()
            except Exception:
                log.exception("publishing health failed")
            await asyncio.sleep(self.config.agent.health_interval_s)

    async def _snapshots(self, camera: Camera) -> None:
        """A snapshot every interval; until the camera's first keyframe, look again every half second so
        the first snapshot is out as soon as there is a picture."""
        while True:
            published = False
            try:
                published = await self._publish_snapshot(camera)
            except Exception:
                log.exception("camera %s: snapshot failed", camera.name)
            await asyncio.sleep(camera.section.snapshot.interval_s if published else 0.5)

    async def _watchdog(self, interval_s: float) -> None:
        """WATCHDOG=1 only while the event loop turns promptly: a loop stuck in a blocking call gets the
        agent restarted by systemd instead of silently serving nothing."""
        while True:
            before = time.monotonic()
            await asyncio.sleep(interval_s)
            lag = time.monotonic() - before - interval_s
            if lag < interval_s:
                systemd.notify("WATCHDOG=1")
            else:
                log.warning("event loop lagged %.1f s; withholding the watchdog ping", lag)

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(coroutine, name=name))

    # -- lifetime ---------------------------------------------------------------------------------

    async def _start_http(self, token: SecretStr) -> None:
        section = self.config.http
        collector = metrics.AgentCollector(
            self.cameras,
            live_stats=(lambda name: self.live_stats(name) or {}),
            mqtt_connected=(lambda: self.mqtt.connected) if self.mqtt else None,
        )
        registry = metrics.make_registry(collector)
        app = make_app(
            self.cameras, token, self.cameras_document, lambda: metrics.render(registry), self.healthy
        )
        if self.live is not None:
            add_whep_routes(app, self.live)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, section.host, section.port, ssl_context=ssl_context(section))
        await site.start()
        scheme = "https" if section.tls else "http"
        log.info("http: listening on %s://%s", scheme, section.listen)

    def _start_live(self) -> None:
        hubs = {name: camera.hub for name, camera in self.cameras.items()}
        self.live = LiveService(self.config.webrtc, dict(self.config.cameras), hubs)
        if self.mqtt is not None:
            mqtt = self.mqtt
            live = self.live

            async def on_offer(topic: str, payload: bytes) -> None:
                camera = self._camera_for_command(topic)
                name = camera.name if camera else topic.split("/")[-3]
                answer = await handle_mqtt_offer(live, name, payload)
                if answer is not None:
                    session_id, body = answer
                    mqtt.publish(mqtt.topic("webrtc", session_id, "answer"), body, qos=1)

            mqtt.subscribe(mqtt.topic("cameras", "+", "webrtc", "offer"), on_offer)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        # What can fail at start (a full disk, a taken port) fails first, before anything is announced.
        state_dir = self.config.agent.state_dir
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        token = load_or_create_token(self.config.http, state_dir)
        self._start_live()
        await self._start_http(token)

        if self.mqtt is not None:
            mqtt = self.mqtt
            for name in self.cameras:
                mqtt.set_state(mqtt.topic("cameras", name, "status"), "offline")
            mqtt.subscribe(mqtt.topic("cameras", "+", "snapshot", "request"), self._on_snapshot_request)
            mqtt.subscribe(mqtt.topic("cameras", "+", "restart"), self._on_restart)
            mqtt.start()
        for camera in self.cameras.values():
            camera.source.on_state_change(self._publish_camera_state)
            camera.start()
            self._spawn(self._snapshots(camera), f"snapshots-{camera.name}")
        self._spawn(self._health(), "health")
        watchdog = systemd.watchdog_interval_s()
        if watchdog:
            self._spawn(self._watchdog(watchdog), "watchdog")
        systemd.notify("READY=1")
        log.info("agent %s running with %d camera(s)", self.config.agent.id, len(self.cameras))

        await self._stop.wait()
        await self.shutdown()

    def request_stop(self) -> None:
        self._stop.set()

    async def shutdown(self) -> None:
        """offline first (operators see the truth at once), then cameras, then the HTTP side."""
        started = time.monotonic()
        systemd.notify("STOPPING=1")
        log.info("stopping")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.mqtt is not None:
            await self.mqtt.stop()
        if self.live is not None:
            with contextlib.suppress(Exception):
                await self.live.close()
        await asyncio.gather(*(camera.stop(SHUTDOWN_JOIN_S) for camera in self.cameras.values()))
        if self._runner is not None:
            await self._runner.cleanup()
        self.executor.shutdown(wait=False, cancel_futures=True)
        log.info("stopped in %.2f s", time.monotonic() - started)
