"""The uplink's pure logic: its configuration section, the start/stop payload, the Janus answers it reads."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from aiortc import RTCConfiguration
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr, ValidationError

from edgeagent.camera.hub import CameraHub
from edgeagent.config import CameraSection, ConfigError, WebRtcSection, parse_config
from edgeagent.configfile import check_config
from edgeagent.health import UplinkHealth, as_json
from edgeagent.live.feed import CameraFeed
from edgeagent.publish.uplink_metrics import UplinkCollector
from edgeagent.uplink.command import MAX_COMMAND_BYTES, parse_action
from edgeagent.uplink.janus import JanusVideoRoom, _checked
from edgeagent.uplink.publisher import UplinkPublisher
from edgeagent.uplink.service import UplinkService
from edgeagent.uplink.settings import UplinkSection
from edgeagent.uplink.signaling import REASONS, SignalingError, SignalingLost
from tests.support.net import free_port
from tests.support.wait import wait_until_async

GOOD = {
    "agent": {"id": "cabinet-17", "state_dir": "/tmp/x"},
    "cameras": {"north": {"url": "rtsp://viewer@10.0.0.21:554/stream1"}},
    "uplink": {"kind": "janus", "url": "https://media.centre.example/janus", "always": ["north"]},
}


def test_a_good_uplink_section_loads_with_its_defaults() -> None:
    config = parse_config(GOOD)
    assert config.uplink is not None
    assert (config.uplink.room, config.uplink.idle_s, config.uplink.max_cameras) == (1234, 300, 4)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"url": "ftp://media.example/janus"}, ["uplink.url", "http"]),
        ({"url": "https://user:pw@media.example/janus"}, ["uplink.url", "token_file"]),
        ({"url": "https://media.example/whip?token=abc"}, ["uplink.url", "token_file"]),
        ({"kind": "rtmp"}, ["uplink.kind"]),
        ({"always": ["South Gate"]}, ["uplink.always"]),
        ({"idle_s": 0}, ["uplink.idle_s"]),
        ({"secret": "in-the-yaml"}, ["uplink.secret"]),
    ],
)
def test_a_bad_uplink_section_is_refused_naming_the_field(change: dict, words: list[str]) -> None:
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    data["uplink"].update(change)
    with pytest.raises((ConfigError, ValidationError)) as caught:
        parse_config(data)
    for word in words:
        assert word in str(caught.value), (word, str(caught.value))


def test_an_always_camera_that_does_not_exist_fails_check_config_in_one_line(tmp_path: Path) -> None:
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    data["uplink"]["always"] = ["south"]
    path = tmp_path / "edgeagent.yaml"
    path.write_text(yaml.safe_dump(data))
    result = subprocess.run(
        [sys.executable, "-m", "edgeagent", "check-config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "uplink" in lines[0] and "south" in lines[0], lines


def test_the_uplink_secret_is_read_at_load_and_never_dumped(tmp_path: Path) -> None:
    secret = tmp_path / "uplink-token"
    secret.write_text("centre-secret-value\n")
    secret.chmod(0o600)
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    data["uplink"]["token_file"] = str(secret)
    path = tmp_path / "edgeagent.yaml"
    path.write_text(yaml.safe_dump(data))
    config = check_config(path).config
    assert config.uplink is not None and config.uplink.token is not None
    assert config.uplink.token.get_secret_value() == "centre-secret-value"
    assert "centre-secret-value" not in config.model_dump_json()


@pytest.mark.parametrize(("payload", "action"), [(b'{"action": "start"}', "start"), (b'{"action":"stop"}', "stop")])
def test_a_start_or_stop_payload_is_understood(payload: bytes, action: str) -> None:
    assert parse_action(payload) == action


@pytest.mark.parametrize(
    "payload",
    [b"", b"start", b"[]", b'{"action": "START"}', b'{"action": 1}', b"\xff\xfe", b'{"action": "start"}' + b" " * 2000],
)
def test_anything_else_is_refused_in_one_line(payload: bytes) -> None:
    with pytest.raises(ValueError) as caught:
        parse_action(payload)
    assert "\n" not in str(caught.value)
    if len(payload) > MAX_COMMAND_BYTES:
        assert "larger than" in str(caught.value)


def test_janus_errors_are_told_apart_a_lost_session_from_a_refusal() -> None:
    with pytest.raises(SignalingLost) as lost:
        _checked({"janus": "error", "error": {"code": 458, "reason": "No such session 1"}})
    assert lost.value.reason == "lost"
    with pytest.raises(SignalingError) as caught:
        _checked({"janus": "error", "error": {"code": 403, "reason": "Unauthorized request (wrong or missing secret)"}})
    assert not isinstance(caught.value, SignalingLost) and "403" in str(caught.value)
    assert caught.value.reason == "refused"
    with pytest.raises(SignalingError):
        _checked(["not", "a", "dict"])
    assert _checked({"janus": "success", "data": {"id": 1}}) == {"janus": "success", "data": {"id": 1}}


async def test_a_janus_event_for_our_own_hangup_ends_the_publication_and_others_do_not() -> None:
    client = JanusVideoRoom(None, "http://janus.example/janus", 1, "cabinet-17/north")  # type: ignore[arg-type]
    client._dispatch({"janus": "event", "plugindata": {"data": {"videoroom": "event", "unpublished": 77}}})
    client._dispatch({"janus": "event", "plugindata": {"data": {"videoroom": "event", "leaving": 78}}})
    client._dispatch({"janus": "keepalive"})
    assert not client.lost.is_set(), "another publisher leaving the room is not our loss"
    client._dispatch({"janus": "hangup", "reason": "DTLS alert"})
    await asyncio.wait_for(client.lost.wait(), 1)


def test_the_api_secret_never_reaches_an_error_message() -> None:
    client = JanusVideoRoom(None, "http://j/janus", 1, "x", SecretStr("s3cret-value"))  # type: ignore[arg-type]
    text = client._redacted(RuntimeError("GET http://j/janus/1?maxev=10&apisecret=s3cret-value failed"))
    assert "s3cret-value" not in text and "<api_secret>" in text


# -- what operations see: health, reasons, metrics ------------------------------------------------------


def _health(**change: object) -> UplinkHealth:
    figures: dict[str, object] = dict(
        kind="whip", state="retrying", publishing=False, wanted=True, always=False, reason="refused",
        last_error="whip: HTTP 403 for the offer", retry_in_s=1.5, publishes_started=3, publishes_connected=1,
        camera_restarts=2, server_restarts=1, bytes_sent=5000, packets_sent=40, payload_bytes_sent=4000,
        since_start_request_s=12.0, idle_stop_in_s=288.0, last_recovery_s=None,
    )  # fmt: skip
    figures.update(change)
    return UplinkHealth(**figures)  # type: ignore[arg-type]


def _samples(health: dict[str, UplinkHealth]) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(UplinkCollector(lambda: health))
    text = generate_latest(registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_uplink_metrics_have_stable_names_and_few_fixed_labels() -> None:
    samples = _samples({"north": _health(), "south": _health(kind="whip", wanted=False, reason=None)})
    north = frozenset({("camera", "north")})
    assert samples[("edgeagent_uplink_publishing", north | {("kind", "whip")})] == 0
    assert samples[("edgeagent_uplink_wanted", north)] == 1
    assert samples[("edgeagent_uplink_bytes_sent_total", north)] == 5000
    assert samples[("edgeagent_uplink_packets_sent_total", north)] == 40
    assert samples[("edgeagent_uplink_payload_bytes_sent_total", north)] == 4000
    assert samples[("edgeagent_uplink_publishes_started_total", north)] == 3
    assert samples[("edgeagent_uplink_publishes_connected_total", north)] == 1
    assert samples[("edgeagent_uplink_restarts_total", north | {("cause", "camera")})] == 2
    assert samples[("edgeagent_uplink_restarts_total", north | {("cause", "server")})] == 1
    assert samples[("edgeagent_uplink_start_request_age_seconds", north)] == 12
    assert samples[("edgeagent_uplink_idle_stop_seconds", north)] == 288
    reasons = {dict(labels)["reason"]: value for (name, labels), value in samples.items()
               if name == "edgeagent_uplink_down_reason" and ("camera", "north") in labels}  # fmt: skip
    assert reasons == {reason: float(reason == "refused") for reason in REASONS}
    south_reasons = [v for (name, labels), v in samples.items() if name == "edgeagent_uplink_down_reason" and
                     ("camera", "south") in labels]  # fmt: skip
    assert len(south_reasons) == len(REASONS) and sum(south_reasons) == 0
    label_names = {key for _, labels in samples for key, _ in labels}
    assert label_names == {"camera", "kind", "reason", "cause"}, "no label carries free text (errors, URLs)"


def test_an_uplink_failure_is_redacted_before_anyone_sees_it() -> None:
    feed = CameraFeed("north", CameraSection(url="rtsp://127.0.0.1:1/x"), CameraHub("north"), WebRtcSection())
    publisher = UplinkPublisher("north", feed, lambda: None, RTCConfiguration(iceServers=[]))  # type: ignore[arg-type, return-value]
    publisher._failed("refused", "whip: GET https://centre:s3cret@media.example/whip?token=abc123 failed\nagain")
    assert publisher.reason == "refused"
    assert "s3cret" not in publisher.last_error and "abc123" not in publisher.last_error, publisher.last_error
    assert "\n" not in publisher.last_error and publisher.last_error.endswith("failed again")


async def test_an_unreachable_media_server_is_the_reason_and_the_lease_counts_down(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there: connections are refused at once
    section = UplinkSection(kind="janus", url=f"http://127.0.0.1:{port}/janus", idle_s=30)
    feed = CameraFeed("north", CameraSection(url="rtsp://127.0.0.1:1/x"), CameraHub("north"), WebRtcSection())
    service = UplinkService(section, WebRtcSection(), "cabinet-17", {"north": feed})
    await service.start()
    try:
        stopped = service.camera_health("north")
        assert stopped is not None and (stopped.wanted, stopped.reason, stopped.idle_stop_in_s) == (False, None, None)
        service.request("north", "start")
        health = await wait_until_async(
            lambda: (h := service.camera_health("north")) is not None and h.reason is not None and h, 10, "a reason"
        )
        assert (health.wanted, health.publishing, health.reason, health.kind) == (True, False, "unreachable", "janus")
        assert health.last_error is not None and "janus: create failed" in health.last_error, health.last_error
        assert health.idle_stop_in_s is not None and 25 < health.idle_stop_in_s <= 30
        assert health.since_start_request_s is not None and 0 <= health.since_start_request_s < 5
        assert health.publishes_started >= 1 and health.publishes_connected == 0 and health.bytes_sent == 0
        assert as_json(health)["state"] in ("connecting", "retrying")

        service.request("north", "stop")
        health = service.camera_health("north")
        assert health is not None and (health.wanted, health.reason, health.idle_stop_in_s) == (False, None, None)
        assert health.last_error is not None, "the last error is kept for operators after the stop"
        assert health.since_start_request_s is not None, "the last start request is still known"
    finally:
        await service.close()
