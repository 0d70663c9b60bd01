"""Every camera's uplink: started on demand (MQTT, HTTP) with an idle stop, or always for chosen cameras.

An on-demand uplink is a lease: each start request renews it, and it stops ``idle_s`` after the last one
(a centre keeps asking while its operators watch; a centre that went away costs the cabinet nothing for
long). ``always`` cameras are published from start to stop. At most ``max_cameras`` at once.

``camera_health`` is what operations see of each camera's uplink (health JSON, /metrics, GET /uplink).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp
from pydantic import SecretStr

from edgeagent.config import WebRtcSection, read_secret
from edgeagent.health import UplinkHealth, as_json
from edgeagent.live.feed import CameraFeed
from edgeagent.live.ice import rtc_configuration
from edgeagent.publish.ratelimit import LogThrottle
from edgeagent.uplink.command import Action, parse_action
from edgeagent.uplink.janus import JanusVideoRoom
from edgeagent.uplink.publisher import UplinkPublisher, UplinkState
from edgeagent.uplink.settings import UplinkSection
from edgeagent.uplink.signaling import Signaling
from edgeagent.uplink.whip import WhipClient

log = logging.getLogger(__name__)


class UplinkRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Lease:
    """An on-demand uplink's time: it stops at ``ends_at`` (monotonic) unless a start renews it."""

    timer: asyncio.TimerHandle
    ends_at: float


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
        self._leases: dict[str, Lease] = {}
        self._requested_at: dict[str, float] = {}  # the centre's last start request (kept after the lease)
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
        self._end_lease(camera)
        self._requested_at.pop(camera, None)
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
        self._end_lease(camera)
        timer = asyncio.get_running_loop().call_later(self.section.idle_s, self._expire, camera)
        now = time.monotonic()
        self._leases[camera] = Lease(timer, now + self.section.idle_s)
        self._requested_at[camera] = now

    def _end_lease(self, camera: str) -> None:
        lease = self._leases.pop(camera, None)
        if lease is not None:
            lease.timer.cancel()

    def _expire(self, camera: str) -> None:
        log.info("uplink: camera %s: no start request for %g s; stopping", camera, self.section.idle_s)
        self._stop_soon(camera)

    def _stop_soon(self, camera: str) -> None:
        self._end_lease(camera)
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
        return {"camera": camera, **as_json(self._health(camera, self.publishers[camera], time.monotonic()))}

    def camera_health(self, camera: str) -> UplinkHealth | None:
        publisher = self.publishers.get(camera)
        return None if publisher is None else self._health(camera, publisher, time.monotonic())

    def health(self) -> dict[str, UplinkHealth]:
        """Every camera's uplink (for /metrics)."""
        now = time.monotonic()
        return {camera: self._health(camera, publisher, now) for camera, publisher in self.publishers.items()}

    def _health(self, camera: str, publisher: UplinkPublisher, now: float) -> UplinkHealth:
        publishing = publisher.state == UplinkState.PUBLISHING
        wanted = publisher.running
        lease = self._leases.get(camera)
        requested = self._requested_at.get(camera)
        sent = publisher.sent
        return UplinkHealth(
            kind=self.section.kind,
            state=str(publisher.state),
            publishing=publishing,
            wanted=wanted,
            always=camera in self.section.always,
            reason=publisher.reason if wanted and not publishing else None,
            last_error=publisher.last_error,
            retry_in_s=None if publisher.retry_at is None else max(0.0, publisher.retry_at - now),
            publishes_started=publisher.attempts,
            publishes_connected=publisher.publications,
            camera_restarts=publisher.camera_restarts,
            server_restarts=publisher.server_restarts,
            bytes_sent=sent.bytes,
            packets_sent=sent.packets,
            payload_bytes_sent=sent.payload_bytes,
            since_start_request_s=None if requested is None else now - requested,
            idle_stop_in_s=None if lease is None else max(0.0, lease.ends_at - now),
            last_recovery_s=publisher.last_recovery_s,
        )

    async def close(self) -> None:
        for lease in self._leases.values():
            lease.timer.cancel()
        self._leases.clear()
        await asyncio.gather(*(p.stop() for p in self.publishers.values()), *self._stopping, return_exceptions=True)
        self._stopping.clear()
        if self._http is not None:
            await self._http.close()
