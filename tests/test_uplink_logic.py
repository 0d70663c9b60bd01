"""The uplink's pure logic: its configuration section, the start/stop payload, the Janus answers it reads."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr, ValidationError

from edgeagent.config import ConfigError, parse_config
from edgeagent.configfile import check_config
from edgeagent.uplink.command import MAX_COMMAND_BYTES, parse_action
from edgeagent.uplink.janus import JanusVideoRoom, _checked
from edgeagent.uplink.signaling import SignalingError, SignalingLost

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
    with pytest.raises(SignalingLost):
        _checked({"janus": "error", "error": {"code": 458, "reason": "No such session 1"}})
    with pytest.raises(SignalingError) as caught:
        _checked({"janus": "error", "error": {"code": 403, "reason": "Unauthorized request (wrong or missing secret)"}})
    assert not isinstance(caught.value, SignalingLost) and "403" in str(caught.value)
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
