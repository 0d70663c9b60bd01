"""The agent on the broker: publishes its state on the topics of ``topics.py`` and routes commands.

Only the agent talks to this bridge; it exists only while MQTT is configured, so nothing here is built
(no health, no JSON) for a broker that is not there. Commands are parsed once, here: a command for an
unknown camera is logged (the topic truncated) and ignored, unless its handler answers such requests
itself (a live-view offer gets a 404 answer on the session's topic).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

from edgeagent.health import AgentHealth, CameraHealth, as_json
from edgeagent.publish import topics
from edgeagent.publish.mqtt import MqttPublisher
from edgeagent.publish.topics import Command, Topic

log = logging.getLogger(__name__)

# handler(camera, payload); a coroutine's task is kept by the publisher until it ends
CameraCommandHandler = Callable[[str, bytes], Awaitable[None] | None]


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


class MqttBridge:
    def __init__(self, publisher: MqttPublisher, cameras: Collection[str], retain_snapshots: bool = True) -> None:
        self.publisher = publisher
        self.base = publisher.base
        self.cameras = cameras  # the agent's own, live: cameras come and go on a configuration reload
        self.retain_snapshots = retain_snapshots  # mqtt.snapshot_retain
        self._snapshot_cleared: set[str] = set()

    # -- state ------------------------------------------------------------------------------------

    def set_state(self, topic: Topic, payload: bytes | str, camera: str = "") -> None:
        """The current state of ``topic`` (of ``camera`` for a per-camera topic), with its own flags."""
        self.publisher.set_state(topic.under(self.base, camera=camera), payload, retain=topic.retained, qos=topic.qos)

    def set_camera_state(self, topic: Topic, camera: str, payload: bytes | str) -> None:
        self.set_state(topic, payload, camera=camera)

    def announce_offline(self) -> None:
        """Every camera ``offline`` until its source says otherwise (before the first connect)."""
        for camera in sorted(self.cameras):
            self.set_camera_state(topics.CAMERA_STATUS, camera, "offline")

    def retire_camera(self, camera: str) -> None:
        """A camera taken out of the configuration: ``offline``, then its retained topics cleared (an
        empty retained payload), so no dashboard keeps showing a camera that is gone."""
        self.set_camera_state(topics.CAMERA_STATUS, camera, "offline")
        for topic in topics.TOPICS:
            if topic.retained and "{camera}" in topic.path:
                self.set_camera_state(topic, camera, b"")

    def publish_camera(self, camera: str, health: CameraHealth) -> None:
        """Status and health of one camera (on every change of its state)."""
        self.set_camera_state(topics.CAMERA_STATUS, camera, health.status)
        self.publish_camera_health(camera, health)

    def publish_camera_health(self, camera: str, health: CameraHealth) -> None:
        self.set_camera_state(topics.CAMERA_HEALTH, camera, _json(as_json(health)))

    def publish_health(self, cameras: Mapping[str, CameraHealth], agent: AgentHealth) -> None:
        for camera, health in cameras.items():
            self.publish_camera_health(camera, health)
        self.set_state(topics.AGENT_HEALTH, _json(as_json(agent)))

    def publish_snapshot(self, camera: str, jpeg: bytes) -> None:
        topic = topics.CAMERA_SNAPSHOT
        if self.retain_snapshots:
            self.set_camera_state(topic, camera, jpeg)
            return
        if camera not in self._snapshot_cleared:
            # A snapshot retained while snapshot_retain was on would be shown to every late subscriber for
            # good: cleared (kept as an empty retained state, so a refresh keeps it cleared).
            self._snapshot_cleared.add(camera)
            self.set_camera_state(topic, camera, b"")
        # Live only: not kept while the broker is away (the next one comes within snapshot.interval_s).
        self.publisher.publish(topic.under(self.base, camera=camera), jpeg, qos=topic.qos)

    def publish_alarms(self, camera: str, document: dict[str, Any]) -> None:
        self.set_camera_state(topics.CAMERA_ALARMS, camera, _json(document))

    def publish_answer(self, session_id: str, body: bytes) -> None:
        """A one-off answer on the session's own topic (dropped when not connected, like any reply)."""
        topic = topics.WEBRTC_ANSWER
        self.publisher.publish(topic.under(self.base, session=session_id), body, qos=topic.qos)

    # -- commands ---------------------------------------------------------------------------------

    def on_command(self, command: Command, handler: CameraCommandHandler, answers_unknown: bool = False) -> None:
        """``handler(camera, payload)`` for every ``command`` to one of the agent's cameras; with
        ``answers_unknown`` also for other camera names (the handler then answers them itself)."""

        def route(topic: str, payload: bytes) -> Awaitable[None] | None:
            parsed = topics.parse_command(self.base, topic)
            if parsed is None or parsed[1] != command.name:
                log.warning("mqtt: ignoring a malformed command topic %r", topic[: topics.TOPIC_LOG_CHARS])
                return None
            camera = parsed[0]
            if camera not in self.cameras:
                log.warning("mqtt: ignoring a command for an unknown camera on %r", topic[: topics.TOPIC_LOG_CHARS])
                if not answers_unknown:
                    return None
            return handler(camera, payload)

        self.publisher.subscribe(command.filter(self.base), route)
