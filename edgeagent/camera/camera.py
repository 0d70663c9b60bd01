"""One camera as the rest of the agent sees it: its source, its hub and its snapshots, made together."""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any

from pydantic import SecretStr

from edgeagent.camera.hub import CameraHub
from edgeagent.camera.source import CameraSource, CameraState
from edgeagent.config import CameraSection
from edgeagent.health import camera_health
from edgeagent.media.snapshot import Snapshotter


class Camera:
    def __init__(
        self, name: str, section: CameraSection, password: SecretStr | None, executor: Executor | None
    ) -> None:
        self.name = name
        self.section = section
        self.hub = CameraHub(name)
        self.source = CameraSource(name, section, password, self.hub)
        self.snapshotter = Snapshotter(name, section.snapshot, section.privacy_masks, self.hub, executor)

    @property
    def online(self) -> bool:
        return self.source.state == CameraState.ONLINE

    def health(self, live: dict[str, Any] | None = None) -> dict[str, Any]:
        return camera_health(self.source, self.hub, self.snapshotter, live)

    def start(self) -> None:
        self.source.start()

    async def stop(self, join_s: float = 2.0) -> None:
        await self.source.stop(join_s)
