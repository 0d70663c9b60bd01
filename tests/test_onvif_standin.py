"""ONVIF where IPyCam falls short, against OUR OWN STAND-IN (tests/support/onvif_standin.py: canned SOAP
on 127.0.0.1, not an independent device): presets, a wrong clock behind an authenticated time query,
broken XML, a hanging and a dead device; and the camera's RTSP side untouched by a hanging ONVIF service."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from edgeagent import reload
from edgeagent.agent import Agent
from edgeagent.config import CameraSection, load_config
from edgeagent.onvif import discovery
from edgeagent.onvif.clock import read_clock
from edgeagent.onvif.control import PtzControl
from edgeagent.onvif.device import OnvifDevice
from edgeagent.onvif.errors import OnvifError, OnvifTimeout
from edgeagent.onvif.events import EventPuller
from edgeagent.onvif.link import OnvifLink
from edgeagent.onvif.ptz import PtzHead
from edgeagent.onvif.settings import OnvifSection
from edgeagent.unit import build_unit
from tests.support.agent import AgentProcess, base_config, write_secret
from tests.support.camera import Camera
from tests.support.net import free_port
from tests.support.onvif_standin import StandIn


@pytest.fixture
async def standin() -> AsyncIterator[StandIn]:
    device = await StandIn().start()
    yield device
    await device.close()


def _link(standin: StandIn, url: str | None = None, timeout_s: float = 2.0) -> OnvifLink:
    section = OnvifSection(address=f"127.0.0.1:{standin.port}", username=standin.user, timeout_s=timeout_s)
    return OnvifLink("standin", section, url, SecretStr(standin.password))


async def test_wrong_clock_behind_an_authenticated_time_query_is_still_reached(standin: StandIn) -> None:
    standin.clock_offset_s = 3600.0  # an hour off, and it authenticates GetSystemDateAndTime too
    device = OnvifDevice(standin.url, standin.user, standin.password, timeout_s=2)
    try:
        await device.connect()
        assert device.clock is not None
        assert device.clock.offset_s == pytest.approx(3600, abs=2)
        assert "HTTP Date" in device.clock.method
        info = await device.device_info()  # signed by zeep with the camera's clock: accepted
        assert (info.manufacturer, info.model) == ("Stand-in", "Canned-1")
        (profile,) = await device.profiles()
        assert (profile.codec, profile.width, profile.height, profile.fps, profile.gop) == ("H264", 320, 180, 25, 50)
    finally:
        await device.close()
    section = CameraSection(url="rtsp://127.0.0.1:9/s", onvif=OnvifSection(address=f"127.0.0.1:{standin.port}",
                            username=standin.user, timeout_s=2))  # fmt: skip
    unit = build_unit("north", section, SecretStr(standin.password), None)
    assert unit.onvif is not None
    await unit.onvif.refresh()
    assert unit.onvif.health().alarms == ["clock"]
    unit.update_alarms()  # the camera's alarms document (<base>/cameras/<cam>/alarms)
    assert unit.alarms.document["active"] == ["offline", "clock"]
    await unit.onvif.close()


async def test_presets_by_name_set_preset_and_spaced_commands(standin: StandIn) -> None:
    link = _link(standin)
    control = PtzControl(link)
    try:
        status, answer = await control.answer("alice", b'{"action": "goto", "preset": "Junction"}')
        assert (status, answer["preset"]) == (200, "p2") and standin.goto == ["p2"]
        status, answer = await control.answer("alice", b'{"action": "goto", "preset": "p1"}')
        assert (status, standin.goto) == (200, ["p2", "p1"])
        status, answer = await control.answer("alice", b'{"action": "set_preset", "name": "Exit 4"}')
        assert (status, answer["preset"]) == (200, "p3")
        status, answer = await control.answer("alice", b'{"action": "goto", "preset": "Nowhere"}')
        assert status == 400 and answer["error"].startswith("preset:")
        status, answer = await control.answer("bob", b'{"action": "stop"}')
        assert (status, answer["holder"]) == (409, "alice")
        ptz_times = [
            t for call, t in zip(standin.calls, standin.times, strict=True) if call in ("GotoPreset", "GetPresets")
        ]
        gaps = [b - a for a, b in zip(ptz_times, ptz_times[1:], strict=False)]
        assert gaps and min(gaps) >= 0.095  # commands to one camera at least 100 ms apart
        flood = await asyncio.gather(*(control.answer("alice", b'{"action": "stop"}') for _ in range(10)))
        statuses = sorted(status for status, _ in flood)
        assert statuses == [200] * 4 + [429] * 6  # at most 4 waiting for one camera; the rest refused at once
        state = await control.state()  # GetStatus with an undeclared prefix: read leniently
        assert (state["pan"], state["tilt"], state["zoom"]) == (0.25, -0.5, 0.75)
        assert [p["name"] for p in state["presets"]] == ["Bridge", "Junction", "new"]
    finally:
        await link.close()


async def test_broken_xml_is_an_error_line_or_read_leniently(standin: StandIn) -> None:
    standin.broken = True
    device = OnvifDevice(standin.url, standin.user, standin.password, timeout_s=2)
    try:
        await device.connect()
        with pytest.raises(OnvifError, match="GetDeviceInformation: unreadable reply"):
            await device.device_info()
        status = await PtzHead(device, "main").status()
        assert (status.pan, status.tilt, status.zoom, status.moving) == (0.25, -0.5, 0.75, "IDLE")
    finally:
        await device.close()
    broken_match = (
        b'<?xml version="1.0"?><e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body>'
        b"<d:ProbeMatch><a:EndpointReference><a:Address>urn:uuid:1</a:Address></a:EndpointReference>"
        b"<d:XAddrs>http://[fe80::1]/onvif http://10.1.2.3/onvif/device_service</d:XAddrs><d:Scopes>onvif://x"
    )  # no ProbeMatches, undeclared prefixes, cut off
    found = discovery.parse_reply(broken_match, "10.1.2.3")
    assert found is not None and found.endpoint == "urn:uuid:1"
    assert found.xaddrs[0] == "http://10.1.2.3/onvif/device_service"  # the sender's own address first
    assert discovery.parse_reply(discovery.probe_message("urn:uuid:2"), "10.1.2.3") is None  # our own probe


async def test_every_call_to_a_hanging_or_dead_device_returns_within_its_timeout(standin: StandIn) -> None:
    standin.hang = True
    timeout_s = 1.0
    device = OnvifDevice(standin.url, standin.user, standin.password, timeout_s=timeout_s)
    for what, call in (
        ("clock", lambda: read_clock(standin.url, standin.user, standin.password, timeout_s)),
        ("connect", device.connect),
        ("stream uri", lambda: device.stream_uri("main")),
    ):
        started = time.monotonic()
        with pytest.raises(OnvifError):
            await call()
        assert time.monotonic() - started < timeout_s + 0.6, what
    device.xaddrs["ptz"] = standin.url
    await device.service("ptz")  # its WSDL parsed first: local work (bounded apart), not a call to the device
    for what, call in (("ptz move", lambda: PtzHead(device, "main").move(0.1, 0, 0, 1)),
                       ("ptz status", lambda: PtzHead(device, "main").status())):  # fmt: skip
        started = time.monotonic()
        with pytest.raises(OnvifTimeout):
            await call()
        assert time.monotonic() - started < timeout_s + 0.6, what
    await device.close()
    dead = f"http://127.0.0.1:{free_port()}/onvif/device_service"
    started = time.monotonic()
    with pytest.raises(OnvifError):
        await OnvifDevice(dead, "u", "p", timeout_s=timeout_s).connect()
    assert time.monotonic() - started < timeout_s
    link = _link(standin, url="rtsp://127.0.0.1:1/configured", timeout_s=timeout_s)
    started = time.monotonic()
    status, answer = await PtzControl(link).answer("alice", b'{"action": "home"}')  # an operator's PTZ command
    assert status == 504 and "no answer" in answer["error"]
    assert time.monotonic() - started < timeout_s + 0.6
    link.start()
    assert await asyncio.to_thread(link.resolve_url) == "rtsp://127.0.0.1:1/configured"  # at once
    started = time.monotonic()
    assert await asyncio.to_thread(link.resolve_url) == "rtsp://127.0.0.1:1/configured"  # after a bounded wait
    assert time.monotonic() - started < timeout_s + 0.6
    await link.close()


def _health(agent: AgentProcess) -> dict[str, Any] | None:
    request = urllib.request.Request(agent.http_url + "/cameras", headers={"Authorization": f"Bearer {agent.token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())["cameras"][0]["health"]
    except (urllib.error.URLError, ConnectionError):
        return None


def with_the_devices_credentials(camera_factory: Callable[..., Camera], standin: StandIn, **kwargs: Any) -> Camera:
    """A camera whose RTSP asks for the ONVIF account, as a real one does. A simulated camera without
    authentication would answer the agent's unauthenticated check (camera/challenge.py) with its SDP: its
    shared pipeline is then made for that check and torn down as FFmpeg's own DESCRIBE comes in, which the
    simulator answers with 503 (a real camera's encoder never stops). Under load that lost every retry."""
    return camera_factory(user=standin.user, password=standin.password, **kwargs)


async def test_a_hanging_onvif_service_leaves_the_rtsp_side_untouched(
    standin: StandIn, camera_factory: Callable[..., Camera], tmp_path: Path,
    base_config: Callable[..., dict[str, Any]], agent_factory: Callable[..., AgentProcess],
) -> None:  # fmt: skip
    standin.hang = True
    camera = with_the_devices_credentials(camera_factory, standin)
    onvif = {"address": f"127.0.0.1:{standin.port}", "username": standin.user, "timeout_s": 1}
    north = {"url": camera.url_with_user, "onvif": onvif, "password": standin.password}
    config = base_config(tmp_path, None, {"north": north})
    agent = agent_factory(config)

    async def state(wanted: str, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            health = await asyncio.to_thread(_health, agent)
            if health is not None and health["state"] == wanted:
                return health
            await asyncio.sleep(0.2)
        raise AssertionError(f"camera not {wanted} within {timeout_s} s:\n{agent.log_text()[-2000:]}")

    await state("online", 30)
    await asyncio.to_thread(camera.stop)
    await state("offline", 15)
    await asyncio.to_thread(camera.start)
    health = await state("online", 30)  # reconnected; each connect waited at most one ONVIF timeout
    assert health["url"] == f"rtsp://{standin.user}:***@127.0.0.1:{camera.port}/stream1"
    assert "no answer" in (health["onvif"]["last_error"] or "") or "longer than" in agent.log_text()


async def test_pullpoint_events_are_renewed_and_resubscribed_after_a_reboot(standin: StandIn) -> None:
    standin.events = True
    link = _link(standin, timeout_s=1)
    received: list[dict[str, Any]] = []
    puller = EventPuller(link, received.append, renew_every_s=0.4, pull_wait_s=0.3)
    task = asyncio.create_task(puller.run())

    async def until(check: Callable[[], bool], what: str, within_s: float = 5) -> None:
        deadline = time.monotonic() + within_s
        while not check():
            assert not task.done(), task
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.05)

    try:
        await until(lambda: standin.subscribed == 1, "a subscription")
        standin.queued.append(("tns1:RuleEngine/CellMotionDetector/Motion", "true"))
        standin.queued.append(("tns1:Device/Trigger/Relay", "active"))  # neither motion nor tamper: not published
        await until(lambda: len(received) == 1, "the motion event")
        assert received == [{"time": "2026-12-01T10:00:00Z", "topic": "tns1:RuleEngine/CellMotionDetector/Motion",
                             "state": True}]  # fmt: skip
        await until(lambda: standin.renewed >= 1, "a renewal")
        standin.reboot()
        await until(lambda: standin.subscribed == 2, "a new subscription after the reboot")
        standin.queued.append(("tns1:RuleEngine/TamperDetector/Tamper", "false"))
        await until(lambda: len(received) == 2, "the tamper event")
        assert received[1]["topic"].endswith("TamperDetector/Tamper") and received[1]["state"] is False
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await link.close()


async def test_camera_events_reach_mqtt(
    standin: StandIn, camera: Camera, broker: Any, mqtt_watcher_factory: Callable[..., Any], tmp_path: Path,
    base_config: Callable[..., dict[str, Any]], agent_factory: Callable[..., AgentProcess],
) -> None:  # fmt: skip
    standin.events = True
    onvif = {"address": f"127.0.0.1:{standin.port}", "username": standin.user, "timeout_s": 2}
    cameras = {"north": {"url": camera.url, "onvif": onvif, "password": standin.password}}
    agent = agent_factory(base_config(tmp_path, broker, cameras))
    base = f"edgeagent/{agent.agent_id}"
    watcher = mqtt_watcher_factory(f"{base}/cameras/north/#")
    deadline = time.monotonic() + 20
    while standin.subscribed == 0:
        assert time.monotonic() < deadline, agent.log_text()[-2000:]
        await asyncio.sleep(0.1)
    standin.queued.append(("tns1:RuleEngine/CellMotionDetector/Motion", "true"))
    message = await asyncio.to_thread(watcher.wait_for, f"{base}/cameras/north/events", None, 15)
    assert message.json() == {"time": "2026-12-01T10:00:00Z", "topic": "tns1:RuleEngine/CellMotionDetector/Motion",
                              "state": True}  # fmt: skip


async def test_the_stream_uri_is_asked_again_at_the_connect_after_a_failure(
    standin: StandIn, camera_factory: Callable[..., Camera], tmp_path: Path,
    base_config: Callable[..., dict[str, Any]], agent_factory: Callable[..., AgentProcess],
) -> None:  # fmt: skip
    before = with_the_devices_credentials(camera_factory, standin, width=320, height=180)
    after = with_the_devices_credentials(camera_factory, standin, width=480, height=270, path="/moved")
    standin.stream_uri = before.url
    onvif = {"address": f"127.0.0.1:{standin.port}", "username": standin.user, "timeout_s": 2}
    agent = agent_factory(base_config(tmp_path, None, {"north": {"onvif": onvif, "password": standin.password}}))

    async def health(check: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = await asyncio.to_thread(_health, agent)
            if found is not None and check(found):
                return found
            await asyncio.sleep(0.2)
        raise AssertionError(f"{what}:\n{agent.log_text()[-2000:]}")

    first = await health(lambda h: h["state"] == "online", "online through the first URI")
    assert (first["url"], first["width"]) == (f"rtsp://{standin.user}:***@127.0.0.1:{before.port}/stream1", 320)
    standin.stream_uri = after.url  # as after a firmware update: another path (and here another port)
    await asyncio.to_thread(before.stop)
    moved = await health(lambda h: h["state"] == "online" and h["width"] == 480, "online through the new URI")
    assert moved["url"] == f"rtsp://{standin.user}:***@127.0.0.1:{after.port}/moved"
    assert standin.calls.count("GetStreamUri") >= 2


async def test_an_onvif_camera_added_and_removed_by_a_reload(standin: StandIn, tmp_path: Path) -> None:
    """In process: a reload starts a camera's ONVIF side with it (PTZ found, clock task running) and a
    reload that removes the camera closes it."""
    config = base_config(tmp_path, None, {"north": {"url": "rtsp://127.0.0.1:9/a"}})
    path = tmp_path / "edgeagent.yaml"
    path.write_text(json.dumps(config))
    agent = Agent(load_config(path), path)
    async with contextlib.AsyncExitStack() as stack:
        await agent._start(stack)
        assert agent.ptz_control("north") is None
        grown = copy.deepcopy(config)
        grown["cameras"]["east"] = {
            "url": "rtsp://127.0.0.1:9/e",
            "onvif": {"address": f"127.0.0.1:{standin.port}", "username": standin.user, "timeout_s": 2},
            "password_file": str(write_secret(tmp_path / "east-password", standin.password)),
        }
        path.write_text(json.dumps(grown))
        assert await reload.reload(agent)
        control = agent.ptz_control("east")
        assert control is not None
        status, answer = await control.answer("alice", b'{"action": "goto", "preset": "Bridge"}')
        assert (status, answer["preset"]) == (200, "p1")
        (clock_task,) = agent.cameras._onvif_tasks["east"]  # without MQTT: no event subscription
        link = agent.units["east"].onvif
        assert link is not None and link.device is not None
        path.write_text(json.dumps(config))
        assert await reload.reload(agent)
        assert agent.ptz_control("east") is None and "east" not in agent.cameras._onvif_tasks
        assert clock_task.cancelled() and link.device is None
        agent.request_stop()


async def test_a_stream_uri_refused_for_the_credentials_is_an_auth_refusal(standin: StandIn) -> None:
    """A camera known by ONVIF alone: a wrong password is AuthRefused (the source backs off: no account
    lock-out), a device that is away is a plain OnvifError (asked again soon)."""
    from edgeagent.camera.failures import AuthRefused

    section = OnvifSection(address=f"127.0.0.1:{standin.port}", username=standin.user, timeout_s=2.0)
    wrong = OnvifLink("standin", section, None, SecretStr("not-the-password"))
    wrong.start()
    with pytest.raises(AuthRefused, match="not authorized"):
        await asyncio.to_thread(wrong.resolve_url)
    await wrong.close()
    away = OnvifLink("standin", section.model_copy(update={"address": f"127.0.0.1:{free_port()}"}), None, None)
    away.start()
    with pytest.raises(OnvifError) as raised:
        await asyncio.to_thread(away.resolve_url)
    assert not isinstance(raised.value, AuthRefused)
    await away.close()
