"""A camera with the consumers the agent gives it: the parts that live and die with one camera.

Add a per-camera consumer (a recorder, an event detector) here as a field, build it in ``build_unit``
then start it in ``Agent._start_unit`` and stop it in ``Agent.stop_unit`` (edgeagent/agent.py): the one
place a camera starts and stops, at start, at stop and on a configuration reload.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, field

from pydantic import SecretStr

from edgeagent.camera.camera import Camera
from edgeagent.config import CameraSection
from edgeagent.media.picture import CameraAlarms
from edgeagent.media.snapshot import Snapshotter


@dataclass(frozen=True, slots=True)
class CameraUnit:
    camera: Camera
    snapshotter: Snapshotter
    alarms: CameraAlarms = field(default_factory=CameraAlarms)  # offline and picture alarms, as published

    def update_alarms(self) -> bool:
        """Take the camera's current state and picture health; True when the alarms document changed."""
        return self.alarms.update(self.camera.online, self.snapshotter.picture.health)

    @property
    def name(self) -> str:
        return self.camera.name


def build_unit(name: str, section: CameraSection, password: SecretStr | None, executor: Executor | None) -> CameraUnit:
    camera = Camera(name, section, password)
    snapshotter = Snapshotter(name, section.snapshot, section.privacy_masks, camera.hub, executor)
    return CameraUnit(camera, snapshotter)
