"""Every MQTT topic and command of the agent, in one table (the README's "MQTT topics" is this table).

Paths are under ``<base>`` = ``<topic_prefix>/<agent.id>``; ``{camera}`` and ``{session}`` are filled in.
To add a per-camera topic: a ``Topic("cameras/{camera}/<name>", ...)`` here, published with
``MqttBridge.set_camera_state`` (edgeagent/publish/mqtt_bridge.py). To add a command: a
``Command("<name>")`` here, with a handler given to ``MqttBridge.on_command``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Topic:
    path: str
    retained: bool
    qos: int
    payload: str

    def under(self, base: str, camera: str = "", session: str = "") -> str:
        return f"{base}/{self.path.format(camera=camera, session=session)}"


@dataclass(frozen=True, slots=True)
class Command:
    """A request to one camera, on ``<base>/cameras/<cam>/<name>`` (``name`` may hold a ``/``)."""

    name: str
    payload: str

    def filter(self, base: str) -> str:
        return f"{base}/cameras/+/{self.name}"


AVAILABILITY = Topic("availability", True, 1, "`online` on every connect; `offline` as last will and on a clean stop")
AGENT_HEALTH = Topic("health", False, 0, "JSON every `health_interval_s` (edgeagent.health.AgentHealth)")
CAMERA_STATUS = Topic("cameras/{camera}/status", True, 1, "`online` / `offline`")
CAMERA_HEALTH = Topic(
    "cameras/{camera}/health", False, 0, "JSON on every change of state and every `health_interval_s` (CameraHealth)"
)
CAMERA_SNAPSHOT = Topic("cameras/{camera}/snapshot", True, 0, "JPEG bytes, every `snapshot.interval_s` and on request")
CAMERA_ALARMS = Topic(
    "cameras/{camera}/alarms",
    True,
    1,
    '`{"active": [names], "since": {name: RFC 3339}}` on every change; names of `offline`, `frozen`, `blank`, '
    "`blurred`, `moved`",
)
WEBRTC_ANSWER = Topic("webrtc/{session}/answer", False, 1, '`{"sdp"}` or `{"error"}`')
CAMERA_EVENTS = Topic("cameras/{camera}/events", False, 1, "ONVIF motion and tamper events: `{time, topic, state}`")
CAMERA_RECORDING = Topic(
    "cameras/{camera}/recording", True, 1,
    "`{state, reason, oldest, newest, bytes, ..., alarms}` on every change and every `health_interval_s`; "
    "state `recording`, `paused` or `off`",
)  # fmt: skip
SIGNING_KEY = Topic("signing-key", True, 1, "PEM: the public Ed25519 key that signs recording exports")
PTZ_RESULT = Topic("cameras/{camera}/ptz/result", False, 1, '`{"ok": true, ...}` or `{"ok": false, "status", "error"}`')

SNAPSHOT_REQUEST = Command("snapshot/request", "any payload: publish a snapshot now")
RESTART = Command("restart", "any payload: drop the camera connection and reconnect")
ALARMS_RESET = Command(
    "alarms/reset", "any payload: learn the reference view and sharpness again (after a deliberate re-aim)"
)
WEBRTC_OFFER = Command("webrtc/offer", '`{"session_id", "sdp"}`: start a live view through the broker')
UPLINK = Command("uplink", '`{"action": "start"|"stop"}`: publish the camera to the centre\'s media server, or stop')

PTZ = Command("ptz", 'a PTZ command as for `POST /cameras/<cam>/ptz`, optionally with `"operator"`')

TOPICS = (
    AVAILABILITY, AGENT_HEALTH, CAMERA_STATUS, CAMERA_HEALTH, CAMERA_SNAPSHOT, CAMERA_ALARMS, WEBRTC_ANSWER,
    CAMERA_EVENTS, PTZ_RESULT, CAMERA_RECORDING, SIGNING_KEY,
)  # fmt: skip
COMMANDS = (SNAPSHOT_REQUEST, RESTART, ALARMS_RESET, WEBRTC_OFFER, UPLINK, PTZ)
TOPIC_LOG_CHARS = 200  # a stranger's topic is logged at most this long


def parse_command(base: str, topic: str) -> tuple[str, str] | None:
    """``(camera, command name)`` of ``<base>/cameras/<cam>/<command>``, or None for anything else."""
    rest = topic.removeprefix(base + "/")
    if rest == topic:
        return None
    kind, _, rest = rest.partition("/")
    camera, _, name = rest.partition("/")
    if kind != "cameras" or not camera or not name:
        return None
    return camera, name
