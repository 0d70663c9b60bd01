"""The MQTT topic table and the command router, without a broker (the broker side is end to end)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from edgeagent.publish import topics
from edgeagent.publish.mqtt_bridge import MqttBridge

BASE = "edgeagent/cabinet-17"


class FakePublisher:
    """What the bridge uses of ``MqttPublisher``: its base, state, one-off messages and subscriptions."""

    def __init__(self) -> None:
        self.base = BASE
        self.states: dict[str, tuple[bytes | str, bool, int]] = {}
        self.messages: list[tuple[str, bytes | str, int]] = []
        self.handlers: dict[str, Any] = {}

    def set_state(self, topic: str, payload: bytes | str, retain: bool = True, qos: int = 1) -> None:
        self.states[topic] = (payload, retain, qos)

    def publish(self, topic: str, payload: bytes | str, qos: int = 0) -> None:
        self.messages.append((topic, payload, qos))

    def subscribe(self, topic_filter: str, handler: Any) -> None:
        self.handlers[topic_filter] = handler


@pytest.mark.parametrize(
    ("topic", "parsed"),
    [
        (f"{BASE}/cameras/north/restart", ("north", "restart")),
        (f"{BASE}/cameras/north/snapshot/request", ("north", "snapshot/request")),
        (f"{BASE}/cameras/north/webrtc/offer", ("north", "webrtc/offer")),
        (f"{BASE}/cameras/north", None),
        (f"{BASE}/cameras//restart", None),
        (f"{BASE}/health", None),
        ("other/cabinet-17/cameras/north/restart", None),
    ],
)
def test_parse_command(topic: str, parsed: tuple[str, str] | None) -> None:
    assert topics.parse_command(BASE, topic) == parsed


def test_topic_table_flags_match_the_readme() -> None:
    retained = {topic.path for topic in topics.TOPICS if topic.retained}
    assert retained == {
        "availability", "cameras/{camera}/status", "cameras/{camera}/snapshot", "cameras/{camera}/alarms",
        "cameras/{camera}/recording", "signing-key",
    }
    assert topics.CAMERA_STATUS.under(BASE, camera="north") == f"{BASE}/cameras/north/status"
    assert topics.WEBRTC_ANSWER.under(BASE, session="s-1") == f"{BASE}/webrtc/s-1/answer"
    assert topics.RESTART.filter(BASE) == f"{BASE}/cameras/+/restart"


def test_commands_reach_their_handler_only_for_known_cameras(caplog: pytest.LogCaptureFixture) -> None:
    publisher = FakePublisher()
    bridge = MqttBridge(publisher, ["north"])  # type: ignore[arg-type]
    restarts: list[tuple[str, bytes]] = []
    offers: list[str] = []
    bridge.on_command(topics.RESTART, lambda camera, payload: restarts.append((camera, payload)))
    bridge.on_command(topics.WEBRTC_OFFER, lambda camera, payload: offers.append(camera), answers_unknown=True)
    restart = publisher.handlers[f"{BASE}/cameras/+/restart"]
    restart(f"{BASE}/cameras/north/restart", b"now")
    unknown = "x" * 500
    with caplog.at_level(logging.WARNING):
        restart(f"{BASE}/cameras/{unknown}/restart", b"")
    assert restarts == [("north", b"now")]
    assert "unknown camera" in caplog.text and unknown not in caplog.text  # the topic is truncated
    offer = publisher.handlers[f"{BASE}/cameras/+/webrtc/offer"]
    offer(f"{BASE}/cameras/nowhere/webrtc/offer", b"{}")  # answered with a 404 by the handler
    assert offers == ["nowhere"]


def test_states_go_out_with_the_flags_of_their_topic() -> None:
    publisher = FakePublisher()
    bridge = MqttBridge(publisher, ["north", "south"])  # type: ignore[arg-type]
    bridge.announce_offline()
    bridge.publish_snapshot("north", b"\xff\xd8")
    bridge.publish_answer("s-1", b'{"sdp":"v=0"}')
    assert publisher.states[f"{BASE}/cameras/south/status"] == ("offline", True, 1)
    assert publisher.states[f"{BASE}/cameras/north/snapshot"] == (b"\xff\xd8", True, 0)
    assert publisher.messages == [(f"{BASE}/webrtc/s-1/answer", b'{"sdp":"v=0"}', 1)]


def test_alarms_go_out_retained_at_qos_1_and_a_retired_camera_leaves_none() -> None:
    publisher = FakePublisher()
    bridge = MqttBridge(publisher, ["north"])  # type: ignore[arg-type]
    bridge.publish_alarms("north", {"active": ["blank"], "since": {"blank": "2026-12-01T09:30:00Z"}})
    assert publisher.states[f"{BASE}/cameras/north/alarms"] == (
        b'{"active":["blank"],"since":{"blank":"2026-12-01T09:30:00Z"}}', True, 1
    )
    bridge.retire_camera("north")
    assert publisher.states[f"{BASE}/cameras/north/alarms"] == (b"", True, 1)
