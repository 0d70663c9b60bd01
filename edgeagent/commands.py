"""What each MQTT command does: the handlers behind the command table of :mod:`edgeagent.publish.topics`.

The limits that keep the broker from being a command channel for anyone on it (a restart at most every
so often, snapshot requests coalesced, offers bounded) are the agent's ``commands`` and
``snapshot_requests``; these handlers ask them before they act.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from edgeagent.live.signaling import handle_mqtt_offer
from edgeagent.publish import topics
from edgeagent.publish.mqtt_bridge import MqttBridge

if TYPE_CHECKING:
    from edgeagent.agent import Agent


class MqttCommands:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def _on_snapshot_request(self, camera: str, payload: bytes) -> None:
        self.agent.snapshot_requests.request(camera)

    async def requested_snapshot(self, camera: str) -> None:
        unit = self.agent.units.get(camera)  # a request may race the camera's removal by a reload
        if unit is not None:
            await self.agent.publish_snapshot(unit)

    def _on_alarms_reset(self, camera: str, payload: bytes) -> None:
        unit = self.agent.units.get(camera)
        if unit is not None:
            self.agent.alarms.reset(unit, "MQTT command")

    def _on_restart(self, camera: str, payload: bytes) -> None:
        unit = self.agent.units.get(camera)
        if unit is not None and self.agent.commands.allow_restart(camera):
            unit.camera.source.restart()

    async def _on_offer(self, camera: str, payload: bytes) -> None:
        assert self.agent.live is not None and self.agent.bridge is not None
        if not self.agent.commands.begin_offer(camera, payload):
            return
        try:
            answer = await handle_mqtt_offer(self.agent.live, camera, payload)
        finally:
            self.agent.commands.end_offer()
        if answer is not None:
            self.agent.bridge.publish_answer(*answer)

    async def _on_ptz(self, camera: str, payload: bytes) -> None:
        unit = self.agent.units.get(camera)
        control = unit.ptz if unit is not None else None
        if control is None:
            document: dict[str, object] = {"ok": False, "status": 404, "error": "this camera has no PTZ"}
        else:
            _, document = await control.answer("mqtt", payload)
        if self.agent.bridge is not None:
            topic = topics.PTZ_RESULT
            body = json.dumps(document, separators=(",", ":")).encode()
            self.agent.bridge.publisher.publish(topic.under(self.agent.bridge.base, camera=camera), body, qos=topic.qos)

    def route(self, bridge: MqttBridge) -> None:
        bridge.on_command(topics.SNAPSHOT_REQUEST, self._on_snapshot_request)
        bridge.on_command(topics.RESTART, self._on_restart)
        bridge.on_command(topics.ALARMS_RESET, self._on_alarms_reset)
        bridge.on_command(topics.PTZ, self._on_ptz)
        if self.agent.live is not None:
            bridge.on_command(topics.WEBRTC_OFFER, self._on_offer, answers_unknown=True)
        if self.agent.uplink is not None:
            bridge.on_command(topics.UPLINK, self.agent.uplink.on_command)
