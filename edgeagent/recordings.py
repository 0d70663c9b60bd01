"""The agent's recordings: the recording service, its signing key, its HTTP routes and its MQTT state.

Built only when the configuration has a ``recording`` section. The service's lifetime is the agent's
(``start`` before HTTP so the routes have the index, ``close`` last of the recording parts); each camera's
recorder starts and stops with the camera, through :class:`edgeagent.camera_units.CameraUnits`, so a
camera added by a reload starts recording, a removed one stops with a ``recording disabled`` gap (a
changed one too, for the moment its new connection takes), and the others keep recording untouched. At
the agent's stop the recorders stop before the cameras do (``agent stopped``).

MQTT: ``<base>/cameras/<cam>/recording`` (retained) on every change of a recorder's state and every
health interval, with the recording alarms in it; ``{"state": "off", "reason": "recording disabled"}``
for cameras with ``record: false``; the public signing key retained on ``<base>/signing-key``.

Bookmarks: the ONVIF events of a recorded camera and its picture alarms, as they are raised, become marks
in the recording index (``edgeagent.record.bookmarks``: coalesced, bounded), listed over HTTP and signed
into exports.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from edgeagent.camera.source import CameraSource
from edgeagent.health import RecordingHealth, RecordingSummary
from edgeagent.offload.service import Offloader, start_offload
from edgeagent.offload.settings import OffloadSection
from edgeagent.onvif.events import EventSink
from edgeagent.publish import topics
from edgeagent.publish.mqtt_bridge import MqttBridge
from edgeagent.publish.recordings_http import RecordingRoutes, add_routes, bearer_check
from edgeagent.record.bookmarks import Bookmarker
from edgeagent.record.model import Bookmark, GapReason
from edgeagent.record.service import RecordingService, RecordingStats
from edgeagent.record.settings import RecordingSection
from edgeagent.record.signing import load_or_create_key, public_pem
from edgeagent.unit import CameraUnit

log = logging.getLogger(__name__)

DISABLED: dict[str, Any] = {"state": "off", "reason": GapReason.RECORDING_DISABLED.value}


def offline_reason(source: CameraSource) -> Callable[[], GapReason]:
    """Why a camera's video stopped, for the gap: a stall, or the camera gone."""

    def reason() -> GapReason:
        return GapReason.STALL if (source.last_error or "").startswith("stalled") else GapReason.CAMERA_OFFLINE

    return reason


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


class AgentRecordings:
    def __init__(
        self, settings: RecordingSection, agent_id: str, bridge: MqttBridge | None, offload: OffloadSection | None
    ) -> None:
        self.offload_section = offload
        self.offloader: Offloader | None = None  # uploads to object storage, with an offload section
        self.service = RecordingService(settings, {})  # cameras join as they start
        self.agent_id = agent_id
        self.bridge = bridge
        self.key: Ed25519PrivateKey | None = None
        self.routes: RecordingRoutes | None = None
        self.stats: dict[str, RecordingStats] = {}  # the last taken, for health and metrics
        self.disabled: set[str] = set()  # cameras with record: false
        self._publishing: set[asyncio.Task[None]] = set()
        self.service.on_change(self._changed)
        self.bookmarks = Bookmarker(self._store_bookmarks)

    async def start(self, state_dir: Any) -> None:
        """Open the index (rebuild, repair), load or make the signing key; in threads."""
        self.key = await asyncio.to_thread(load_or_create_key, state_dir)
        await self.service.start()
        if self.offload_section is not None:  # its retention hook: nothing deleted before it is queued
            self.offloader = await start_offload(self.offload_section, self.service, self.agent_id)

    async def close(self) -> None:
        for task in list(self._publishing):
            task.cancel()
        await asyncio.gather(*self._publishing, return_exceptions=True)
        await self.bookmarks.close()  # what is being written, before the index closes
        if self.offloader is not None:
            await self.offloader.stop()  # before the index it reads closes
        await self.service.stop()

    def add_http_routes(self, app: web.Application, cameras: list[str], token: SecretStr) -> None:
        assert self.key is not None, "start() first"
        exports = self.offloader.exports if self.offloader is not None else None  # HTTP exports go too
        self.routes = RecordingRoutes(self.service.index, cameras, self.key, self.agent_id, bearer_check(token),
                                      growing=self.service.growing, exports=exports)
        add_routes(app, self.routes)

    # -- cameras (CameraUnits) --------------------------------------------------------------------

    def add_camera(self, unit: CameraUnit) -> None:
        if self.routes is not None:
            self.routes.cameras.add(unit.name)  # its recordings (also those of before) can be read
        if not unit.camera.section.record:
            self.disabled.add(unit.name)
            if self.bridge is not None:
                self.bridge.set_camera_state(topics.CAMERA_RECORDING, unit.name, _json(DISABLED))
            return
        self.disabled.discard(unit.name)
        self.service.add_camera(unit.name, unit.camera.hub, offline_reason(unit.camera.source))

    async def remove_camera(self, name: str, reason: GapReason) -> None:
        # Its recordings stay readable over HTTP (until retention deletes them): the video is still evidence.
        self.disabled.discard(name)
        self.stats.pop(name, None)
        self.bookmarks.forget(name)
        await self.service.remove_camera(name, reason)

    # -- bookmarks --------------------------------------------------------------------------------

    def _store_bookmarks(self, bookmarks: list[Bookmark]) -> None:  # in a thread
        self.service.index.add_bookmarks(bookmarks)

    def onvif_events(self, unit: CameraUnit) -> EventSink | None:
        """The sink that makes a recorded camera's ONVIF events bookmarks (None: not recorded)."""
        link = unit.onvif
        if link is None or not unit.camera.section.record:
            return None
        name = unit.name

        def mark(event: dict[str, Any]) -> None:
            self.bookmarks.onvif_event(name, event, link.clock_offset_s, link.secrets())

        return mark

    def alarms_changed(self, camera: str, document: dict[str, Any]) -> None:
        """A camera's alarms document changed (``edgeagent.alarms.Alarms``): picture alarms raised, bookmarks."""
        if camera not in self.disabled:  # (record: false)
            self.bookmarks.picture_alarms(camera, document)

    # -- publishing -------------------------------------------------------------------------------

    def _changed(self, camera: str) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Publish every camera's recording soon (on a change, and every health interval)."""
        task = asyncio.get_running_loop().create_task(self.publish())
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def publish(self) -> None:
        """Take every recorder's figures (SQLite, statvfs: in a thread) and publish them."""
        try:
            taken = await self.service.astats()
        except Exception:
            log.exception("recording: taking the figures failed")
            return
        # A camera a reload removed while the thread ran: its retained state is cleared, and must stay so.
        stats = {camera: figures for camera, figures in taken.items() if camera in self.service.recorders}
        self.stats = stats
        if self.bridge is None:
            return
        for camera, figures in stats.items():
            document = figures.to_json()
            document["alarms"] = self.service.alarms(figures) + (self.offloader.alarms() if self.offloader else [])
            self.bridge.set_camera_state(topics.CAMERA_RECORDING, camera, _json(document))
        for camera in self.disabled:
            self.bridge.set_camera_state(topics.CAMERA_RECORDING, camera, _json(DISABLED))

    def publish_key(self) -> None:
        if self.bridge is not None and self.key is not None:
            self.bridge.set_state(topics.SIGNING_KEY, public_pem(self.key.public_key()))

    # -- health (the figures of the last publish, so health never waits for SQLite) ---------------

    def camera_health(self, camera: str) -> RecordingHealth:
        figures = self.stats.get(camera)
        if figures is None:
            state = "off" if camera in self.disabled or camera not in self.service.recorders else "starting"
            reason = GapReason.RECORDING_DISABLED.value if camera in self.disabled else None
            return RecordingHealth(state, reason, None, None, 0, 0, 0.0, 0, None)
        document = figures.to_json()
        return RecordingHealth(
            figures.state, figures.reason, document["oldest"], document["newest"], figures.bytes,
            figures.bytes_written, figures.bytes_per_hour, figures.dropped, figures.disk_days,
        )  # fmt: skip

    def summary(self) -> RecordingSummary:
        """The agent's health: how many cameras record, pause, and what the disk holds."""
        figures = list(self.stats.values())
        days = [item.disk_days for item in figures if item.disk_days is not None]
        return RecordingSummary(
            recording=sum(item.state == "recording" for item in figures),
            paused=sum(item.state == "paused" for item in figures),
            off=len(self.disabled) + sum(item.state == "off" for item in figures),
            bytes=sum(item.bytes for item in figures),
            bytes_written=sum(item.bytes_written for item in figures),
            disk_days=min(days) if days else None,
            endurance_used=figures[0].endurance_used if figures else None,
            exports_not_queued=dict(self.offloader.exports.refused) if self.offloader is not None else None,
            bookmarks={"stored": self.bookmarks.stored, "coalesced": self.bookmarks.coalescer.coalesced,
                       "dropped": self.bookmarks.dropped},  # fmt: skip
        )
