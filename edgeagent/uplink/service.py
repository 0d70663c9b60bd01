"""Every camera's uplink: started on demand (MQTT, HTTP) with an idle stop, or always for chosen cameras.

An on-demand uplink is a lease: each start request renews it, and it stops ``idle_s`` after the last one
(a centre keeps asking while its operators watch; a centre that went away costs the cabinet nothing for
long). ``always`` cameras are published from start to stop. At most ``max_cameras`` at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

import aiohttp
from pydantic import SecretStr

from edgeagent.config import WebRtcSection, read_secret
from edgeagent.live.feed import CameraFeed
from edgeagent.live.ice import rtc_configuration
from edgeagent.publish.ratelimit import LogThrottle
from edgeagent.uplink.command import Action, parse_action
from edgeagent.uplink.janus import JanusVideoRoom
from edgeagent.uplink.publisher import UplinkPublisher
from edgeagent.uplink.settings import UplinkSection
from edgeagent.uplink.signaling import Signaling
from edgeagent.uplink.whip import WhipClient

log = logging.getLogger(__name__)


class UplinkRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class UplinkService:
    """Publishers come and go with the cameras (``add_camera``/``remove_camera``, also on a reload)."""

    def __init__(
        self,
        section: UplinkSection,
        webrtc: WebRtcSection,
        agent_id: str,
        feeds: Mapping[str, CameraFeed] | None = None,
    ) -> None:
        self.section = section
        self.agent_id = agent_id
        # Read at load with the rest of the configuration; a section built in code reads its file here.
        self._token: SecretStr | None = section.token or read_secret(section.token_file, None, "uplink.token_file")
        self._http: aiohttp.ClientSession | None = None
        self._configuration = rtc_configuration(webrtc)
        self._host_addresses = tuple(webrtc.host_addresses)
        self.publishers: dict[str, UplinkPublisher] = {}
        self._idle: dict[str, asyncio.TimerHandle] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._log = LogThrottle(period_s=60.0, max_lines=20)  # a stranger on the broker cannot flood the log
        for camera, feed in (feeds or {}).items():
            self.add_camera(camera, feed)

    def add_camera(self, camera: str, feed: CameraFeed) -> None:
        """A camera that started: it can be published (at once when it is one of ``always``)."""
        publisher = UplinkPublisher(
            camera, feed, self._signaling_for(camera), self._configuration, self._host_addresses
        )
        self.publishers[camera] = publisher
        if self._http is not None and camera in self.section.always:
            publisher.start()

    async def remove_camera(self, camera: str) -> None:
        """A camera that stops (removed or changed by a reload): its publication ends before its feed."""
        timer = self._idle.pop(camera, None)
        if timer is not None:
            timer.cancel()
        publisher = self.publishers.pop(camera, None)
        if publisher is not None:
            await publisher.stop()

    def _signaling_for(self, camera: str) -> Callable[[], Signaling]:
        def make() -> Signaling:
            assert self._http is not None, "the uplink service is not started"
            timeout = self.section.request_timeout_s
            if self.section.kind == "whip":
                endpoint = self.section.url.replace("{camera}", camera)
                return WhipClient(self._http, endpoint, self._token, timeout)
            display = f"{self.agent_id}/{camera}"
            return JanusVideoRoom(self._http, self.section.url, self.section.room, display, self._token, timeout)

        return make

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()
        for camera in self.section.always:
            if camera in self.publishers:
                self.publishers[camera].start()
        if self.section.always:
            log.info("uplink: publishing %s always", ", ".join(self.section.always))

    def request(self, camera: str, action: Action) -> dict[str, object]:
        """Start (or renew) or stop the uplink of ``camera``; its status, or ``UplinkRefused``."""
        publisher = self.publishers.get(camera)
        if publisher is None:
            raise UplinkRefused(404, f"unknown camera {camera[:64]!r}")
        if camera in self.section.always:
            return self.status(camera)  # published for good: requests neither start nor stop it
        if action == "start":
            running = sum(1 for p in self.publishers.values() if p.running)
            if not publisher.running and running >= self.section.max_cameras:
                raise UplinkRefused(503, f"the uplink carries its maximum of {self.section.max_cameras} cameras")
            self._renew(camera)
            publisher.start()
        else:
            self._stop_soon(camera)
        return self.status(camera)

    def _renew(self, camera: str) -> None:
        timer = self._idle.pop(camera, None)
        if timer is not None:
            timer.cancel()
        self._idle[camera] = asyncio.get_running_loop().call_later(self.section.idle_s, self._expire, camera)

    def _expire(self, camera: str) -> None:
        log.info("uplink: camera %s: no start request for %g s; stopping", camera, self.section.idle_s)
        self._stop_soon(camera)

    def _stop_soon(self, camera: str) -> None:
        timer = self._idle.pop(camera, None)
        if timer is not None:
            timer.cancel()
        publisher = self.publishers.get(camera)
        stopping = publisher.halt() if publisher is not None else None
        if stopping is not None:
            self._stopping.add(stopping)
            stopping.add_done_callback(self._stopping.discard)

    def on_command(self, camera: str, payload: bytes) -> None:
        """The MQTT command ``<base>/cameras/<cam>/uplink``; a bad one is logged and ignored."""
        try:
            self.request(camera, parse_action(payload))
        except (ValueError, UplinkRefused) as exc:
            unlogged = self._log.should_log(f"{camera[:64]}/{type(exc).__name__}")
            if unlogged is not None:
                more = f" ({unlogged} more since the last line)" if unlogged else ""
                log.warning("uplink: command for camera %s ignored: %s%s", camera[:64], exc, more)

    def status(self, camera: str) -> dict[str, object]:
        return {"camera": camera, "always": camera in self.section.always, **self.publishers[camera].status()}

    async def close(self) -> None:
        for timer in self._idle.values():
            timer.cancel()
        self._idle.clear()
        await asyncio.gather(*(p.stop() for p in self.publishers.values()), *self._stopping, return_exceptions=True)
        self._stopping.clear()
        if self._http is not None:
            await self._http.close()
