"""One camera's ingest as the rest of the agent sees it: its source and its hub, made together.

What consumes the hub (snapshots, live view, recording) is composed above this package, in
``edgeagent.unit``; the camera package knows nothing of its consumers.
"""

from __future__ import annotations

from pydantic import SecretStr

from edgeagent.camera.hub import CameraHub
from edgeagent.camera.source import CameraSource, CameraState
from edgeagent.config import CameraSection


class Camera:
    def __init__(self, name: str, section: CameraSection, password: SecretStr | None) -> None:
        self.name = name
        self.section = section
        self.hub = CameraHub(name)
        self.source = CameraSource(name, section, password, self.hub)

    @property
    def online(self) -> bool:
        """The one definition of "online" (status topics, health, /healthz, /metrics)."""
        return self.source.state == CameraState.ONLINE

    @property
    def status(self) -> str:
        return "online" if self.online else "offline"

    def start(self) -> None:
        self.source.start()

    async def stop(self, join_s: float = 2.0) -> None:
        await self.source.stop(join_s)
