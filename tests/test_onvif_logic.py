"""Pure logic of the ONVIF side: its config block, PTZ command validation and control, discovery and
clock parsing, the cameras: fragment."""

from __future__ import annotations

import json

import pytest

from edgeagent.config import ConfigError, parse_config
from edgeagent.onvif import commission, discovery, soap
from edgeagent.onvif.clock import camera_utc
from edgeagent.onvif.control import PtzRefused, parse_command
from edgeagent.onvif.settings import device_url

AGENT = {"id": "cabinet-17"}


def _config(camera: dict[str, object]) -> list[str]:
    try:
        parse_config({"agent": AGENT, "cameras": {"north": camera}})
    except ConfigError as exc:
        return exc.lines
    return []


def test_an_onvif_camera_needs_no_url_but_a_camera_needs_one_or_the_other() -> None:
    assert _config({"onvif": {"address": "10.0.0.21:80", "username": "viewer", "profile": "Profile_1"}}) == []
    assert _config({"url": "rtsp://viewer@10.0.0.21/s", "onvif": {"address": "10.0.0.21"}}) == []
    (line,) = _config({"transport": "tcp"})
    assert line.startswith("cameras.north: needs a url, or an onvif section")
    (line,) = _config({"onvif": {"address": "10.0.0.21", "user": "x"}})
    assert line == "cameras.north.onvif.user: unknown key"
    (line,) = _config({"onvif": {"address": "http://admin:secret@10.0.0.21"}})
    assert line.startswith("cameras.north.onvif.address: must not hold credentials") and "secret" not in line
    (line,) = _config({"onvif": {"address": "10.0.0.21", "timeout_s": 0}})
    assert line.startswith("cameras.north.onvif.timeout_s:")


def test_device_url_defaults_to_the_onvif_device_service_path() -> None:
    assert device_url("10.0.0.21") == "http://10.0.0.21/onvif/device_service"
    assert device_url("10.0.0.21:8080") == "http://10.0.0.21:8080/onvif/device_service"
    assert device_url("https://cam.example/onvif/dev") == "https://cam.example/onvif/dev"


@pytest.mark.parametrize(
    ("body", "starts"),
    [
        (b'{"action": "move", "pan": 1.5}', "pan: Input should be less than or equal to 1"),
        (b'{"action": "move", "timeout_s": 30}', "timeout_s: Input should be less than or equal to 10"),
        (b'{"action": "absolute", "pan": 0, "tilt": 0, "zoom": -1}', "zoom:"),
        (b'{"action": "absolute", "pan": 0}', "tilt: Field required"),
        (b'{"action": "dance"}', "action:"),
        (b'{"action": "stop", "extra": 1}', "extra: Extra inputs are not permitted"),
        (b'{"action": "set_preset", "name": "<b>"}', "name:"),
        (b'{"action": "goto", "preset": ""}', "preset:"),
        (b'{"action": "stop", "operator": "x\\ny"}', "operator:"),
        (b"[]", "body must be a JSON object"),
        (b"\xff\xfe", "body is not JSON"),
    ],
)
def test_a_bad_ptz_command_is_one_line_naming_the_field(body: bytes, starts: str) -> None:
    with pytest.raises(PtzRefused) as refused:
        parse_command(body)
    assert refused.value.status == 400
    assert refused.value.reason.startswith(starts), refused.value.reason
    assert "\n" not in refused.value.reason


def test_a_ptz_body_is_bounded() -> None:
    with pytest.raises(PtzRefused) as refused:
        parse_command(b" " * 5000)
    assert refused.value.status == 413


def test_good_ptz_commands_and_the_operator_they_name() -> None:
    command, operator = parse_command(b'{"action": "move", "pan": -1, "zoom": 0.5, "operator": "desk 2"}')
    assert (command.action, operator) == ("move", "desk 2")
    assert (command.pan, command.tilt, command.zoom, command.timeout_s) == (-1, 0, 0.5, 1.0)  # type: ignore[union-attr]


def test_discovery_replies_are_deduplicated_by_endpoint() -> None:
    collector = discovery._Collector()
    reply = (
        b"<Envelope><Body><ProbeMatches><ProbeMatch><EndpointReference><Address>urn:uuid:a</Address>"
        b"</EndpointReference><XAddrs>http://10.0.0.5/onvif/device_service</XAddrs></ProbeMatch></ProbeMatches>"
        b"</Body></Envelope>"
    )
    collector.datagram_received(reply, ("10.0.0.5", 3702))
    collector.datagram_received(reply.replace(b"10.0.0.5/", b"10.0.0.6/"), ("10.0.0.5", 3702))
    collector.datagram_received(b"\x00garbage", ("10.0.0.9", 3702))
    (device,) = collector.found.values()
    assert device.xaddrs == ["http://10.0.0.5/onvif/device_service", "http://10.0.0.6/onvif/device_service"]


def test_camera_clock_from_a_reply_with_odd_prefixes() -> None:
    root = soap.parse_lenient(
        b"<x:R><q:UTCDateTime><q:Time><q:Hour>7</q:Hour><q:Minute>5</q:Minute><q:Second>9</q:Second></q:Time>"
        b"<q:Date><q:Year>2026</q:Year><q:Month>12</q:Month><q:Day>1</q:Day></q:Date></q:UTCDateTime></x:R>"
    )
    assert root is not None
    when = camera_utc(root)
    assert when is not None and when.isoformat() == "2026-12-01T07:05:09+00:00"


def test_the_cameras_fragment_is_valid_config_without_a_password() -> None:
    report = {"xaddrs": ["http://10.0.0.21:8080/onvif/device_service"], "model": "P-3245", "serial": "AC1",
              "profiles": [{"token": "profile_1"}], "error": None}  # fmt: skip
    fragment = commission.yaml_fragment([report, dict(report)], "viewer")
    import yaml

    cameras = yaml.safe_load(fragment)["cameras"]
    assert list(cameras) == ["p-3245-ac1", "p-3245-ac1-2"]
    parse_config({"agent": AGENT, "cameras": cameras})
    assert cameras["p-3245-ac1"]["onvif"] == {"address": "10.0.0.21:8080", "username": "viewer", "profile": "profile_1"}
    assert "password:" not in fragment and json.dumps(cameras)


def test_discover_says_in_one_line_when_nothing_answers_or_the_interface_is_not_ours() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.support.net import free_port

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    base = [sys.executable, "-m", "edgeagent", "discover", "--timeout", "0.3"]
    silent = subprocess.run([*base, "--probe", f"127.0.0.1:{free_port()}"], env=env, capture_output=True, text=True,
                            timeout=30)  # fmt: skip
    assert (silent.returncode, silent.stderr) == (1, "no ONVIF device answered within 0.3 s\n")
    foreign = subprocess.run([*base, "--interface", "203.0.113.9"], env=env, capture_output=True, text=True, timeout=30)
    assert foreign.returncode == 2 and foreign.stderr.startswith("discover: ") and foreign.stderr.count("\n") == 1


async def test_discover_contacts_only_the_address_that_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = discovery.Discovered("urn:uuid:x", "127.0.0.1", ["http://203.0.113.5/onvif/device_service"])
    here = discovery.Discovered("urn:uuid:y", "127.0.0.2", ["http://127.0.0.2:8080/onvif/device_service"])
    asked: list[str] = []

    async def probe(*args: object, **kwargs: object) -> list[discovery.Discovered]:
        return [elsewhere, here]

    async def describe(xaddr: str, *args: object) -> dict[str, object]:
        asked.append(xaddr)
        return commission.empty_report([xaddr])

    monkeypatch.setattr(discovery, "probe", probe)
    monkeypatch.setattr(commission, "describe", describe)
    reports = await commission.discover(0.1, None, ["127.0.0.1"], "u", "p")
    assert asked == ["http://127.0.0.2:8080/onvif/device_service"]
    assert "not contacted" in reports[0]["error"] and reports[1]["error"] is None


def test_the_systemd_dropin_allows_an_onvif_cameras_device_address() -> None:
    from edgeagent.unit_dropin import allowed

    config = parse_config({"agent": AGENT, "cameras": {
        "north": {"onvif": {"address": "10.0.0.21:80"}},
        "east": {"url": "rtsp://10.0.0.22/s", "onvif": {"address": "10.0.0.22"}},
    }})  # fmt: skip
    assert allowed(config, []) == [("10.0.0.21", "camera north (ONVIF)"), ("10.0.0.22", "camera east")]
