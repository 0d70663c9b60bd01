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
from edgeagent.media.picture import CameraAlarms, PictureHealth
from edgeagent.media.snapshot import Snapshotter
from edgeagent.onvif.control import PtzControl
from edgeagent.onvif.link import OnvifLink


@dataclass(frozen=True, slots=True)
class CameraUnit:
    camera: Camera
    snapshotter: Snapshotter
    onvif: OnvifLink | None = None  # with an onvif section: stream URI, identity, clock, PTZ
    ptz: PtzControl | None = None  # operators' PTZ commands to it (with an onvif section)
    alarms: CameraAlarms = field(default_factory=CameraAlarms)  # offline and picture alarms, as published

    def update_alarms(self) -> bool:
        """Take the camera's current state and picture health; True when the alarms document changed."""
        health = self.snapshotter.picture.health
        clock_since = self.onvif.clock_alarm_since if self.onvif is not None else None
        if clock_since is not None:  # the camera's clock is off: evidence needs the right time
            health = PictureHealth([*health.active, "clock"], {**health.since, "clock": clock_since})
        return self.alarms.update(self.camera.online, health)

    @property
    def name(self) -> str:
        return self.camera.name


def build_unit(name: str, section: CameraSection, password: SecretStr | None, executor: Executor | None) -> CameraUnit:
    link = OnvifLink(name, section.onvif, section.url or None, password) if section.onvif is not None else None
    if link is not None and not section.url:
        # The source starts from the camera's address; the resolver gives it the stream URI before it opens.
        section = section.model_copy(update={"url": link.placeholder_url()})
    camera = Camera(name, section, password)
    snapshotter = Snapshotter(name, section.snapshot, section.privacy_masks, camera.hub, executor)
    if link is not None:
        camera.source.stream.resolver = link.resolve_url
        camera.source.stream.known = link.configured_url is not None
    return CameraUnit(camera, snapshotter, link, PtzControl(link) if link is not None else None)
