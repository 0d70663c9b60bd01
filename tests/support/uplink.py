"""The uplink in-process with real parts, for the Janus and WHIP tests: a simulated camera, its RTSP source
and hub, the live view's feed and the UplinkService publishing camera ``north`` to a media server in the
network namespace of tests/support/janus.py. Also what those tests read: the room's publishers, and the
uplink's /metrics as the agent renders them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from edgeagent.camera.hub import CameraHub
from edgeagent.camera.source import CameraSource
from edgeagent.config import CameraSection, WebRtcSection
from edgeagent.health import UplinkHealth
from edgeagent.live.service import LiveService
from edgeagent.publish import metrics
from edgeagent.publish.uplink_metrics import UplinkCollector
from edgeagent.uplink.publisher import UplinkPublisher, UplinkState
from edgeagent.uplink.service import UplinkService
from edgeagent.uplink.settings import UplinkSection
from tests.support.agent import write_secret
from tests.support.camera import Camera
from tests.support.janus import Janus, JanusViewer, Netns
from tests.support.wait import wait_until_async

CAMERA = "north"


@dataclass
class UplinkRig:
    janus: Janus  # the media server, or the one behind the WHIP server
    camera: Camera
    hub: CameraHub
    source: CameraSource
    live: LiveService
    uplink: UplinkService
    viewers: list[JanusViewer] = field(default_factory=list)

    @property
    def publisher(self) -> UplinkPublisher:
        return self.uplink.publishers[CAMERA]

    def health(self) -> UplinkHealth:
        health = self.uplink.camera_health(CAMERA)
        assert health is not None
        return health

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """The uplink's samples as /metrics renders them: (name, labels) -> value."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(UplinkCollector(self.uplink.health))  # as the agent registers it
        text = metrics.render(registry).decode()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    async def published(self, publications: int = 1, within_s: float = 20) -> None:
        publisher = self.publisher
        await wait_until_async(
            lambda: publisher.publications >= publications and publisher.state == UplinkState.PUBLISHING,
            within_s,
            f"publication {publications} ({self.uplink.status(CAMERA)})",
        )

    def watcher(self, room: int) -> JanusViewer:
        """An operator of the centre in ``room`` (closed with the rig)."""
        viewer = JanusViewer(self.janus, room)
        self.viewers.append(viewer)
        return viewer

    async def viewer(self, room: int, display: str) -> JanusViewer:
        """An operator subscribed to ``display`` in ``room``."""
        viewer = self.watcher(room)
        await viewer.subscribe((await room_publishers(viewer, display))[display])
        return viewer

    async def close(self) -> None:
        for viewer in self.viewers:
            await viewer.close()
        await self.uplink.close()
        await self.live.close()
        await self.source.stop()
        self.camera.close()


async def room_publishers(
    viewer: JanusViewer, display: str, present: bool = True, within_s: float = 10
) -> dict[str, int]:
    """The room's publishers (display -> feed) once ``display`` is among them (or, ``present=False``, gone)."""
    found: dict[str, int] = {}

    async def probe() -> bool:
        nonlocal found
        found = await viewer.publishers()
        return (display in found) == present

    await wait_until_async(probe, within_s, f"{display} {'in' if present else 'out of'} the room", interval=0.1)
    return found


@pytest.fixture
async def uplink_rig(netns: Netns, tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[UplinkRig]]]:
    """``await uplink_rig(janus, token, kind=..., url=..., **uplink)``: a started rig publishing camera
    ``north`` over the cabinet's side of the namespace's link; all closed at teardown, before the
    namespace goes (its addresses must not be left to the default route). Ask for the media server's
    fixture first, so that it outlives the rig too."""
    rigs: list[UplinkRig] = []

    async def make(janus: Janus, token: str, *, width: int = 640, height: int = 360, **uplink: Any) -> UplinkRig:
        number = len(rigs)
        camera = Camera(log_path=tmp_path / f"camera{number}.log", fps=25, gop_s=1, width=width, height=height)
        camera.start()
        token_file = write_secret(tmp_path / f"uplink-token{number}", token)
        section = CameraSection(url=camera.url, stall_timeout_s=3)
        hub = CameraHub(CAMERA)
        source = CameraSource(CAMERA, section, None, hub)
        source.start()
        webrtc = WebRtcSection(host_addresses=[janus.netns.uplink.host_ip])
        live = LiveService(webrtc, {CAMERA: section}, {CAMERA: hub})
        settings = UplinkSection(token_file=token_file, **uplink)
        service = UplinkService(settings, webrtc, "cabinet-17", {CAMERA: live.feed(CAMERA)})
        rig = UplinkRig(janus, camera, hub, source, live, service)
        rigs.append(rig)
        await service.start()
        return rig

    yield make
    for rig in rigs:
        await rig.close()
