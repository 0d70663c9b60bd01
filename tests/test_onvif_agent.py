"""The agent with an ONVIF camera (IPyCam in its own network namespace, our RTSP simulator as its stream):
the stream URI comes from GetStreamUri, the camera goes online, health names the device, PTZ over HTTP."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.agent import AgentProcess
from tests.support.onvif_device import PASSWORD, USER, IpyCamDevice, agent_http, wait_until


@pytest.fixture
def ipycam(tmp_path: Path) -> Iterator[IpyCamDevice]:
    device = IpyCamDevice(tmp_path / "ipycam").start()
    yield device
    device.close()


def _camera(agent: AgentProcess, name: str) -> dict[str, Any] | None:
    assert agent.running, agent.log_text()[-3000:]
    try:
        status, text = agent_http(agent, "GET", "/cameras")
    except urllib.error.URLError:
        return None  # not listening yet
    if status != 200:
        return None
    return next((c for c in json.loads(text)["cameras"] if c["name"] == name), None)


def test_agent_streams_from_the_onvif_uri_and_steers_ptz(
    ipycam: IpyCamDevice, tmp_path: Path, base_config: Callable[..., dict[str, Any]],
    agent_factory: Callable[..., AgentProcess],
) -> None:  # fmt: skip
    cameras = {
        "north": {"onvif": {"address": ipycam.onvif_address, "username": USER, "timeout_s": 2}, "password": PASSWORD},
        "fixed": {"url": ipycam.stream_url_with_user, "password": PASSWORD},
    }
    agent = agent_factory(base_config(tmp_path, None, cameras))

    def online() -> dict[str, Any] | None:
        camera = _camera(agent, "north")
        return camera if camera and camera["status"] == "online" and camera["health"].get("onvif") else None

    health = wait_until(online, 30, "camera north online through its ONVIF stream URI", interval=0.2)["health"]
    assert health["url"] == f"rtsp://{USER}:***@{ipycam.address}:8554/stream1"  # GetStreamUri's, with the user
    assert (health["width"], health["height"]) == (320, 180)
    onvif = health["onvif"]
    assert (onvif["manufacturer"], onvif["model"], onvif["firmware"]) == ("PythonCam", "VirtualCam-1", "1.3.0")
    assert abs(onvif["clock_offset_s"]) < 2 and onvif["alarms"] == [] and onvif["ptz"] is True

    assert agent_http(agent, "POST", "/cameras/north/ptz", {"action": "absolute", "pan": 0.4, "tilt": 0.1, "zoom": 0.2},
                 operator="alice")[0] == 200  # fmt: skip
    status, text = agent_http(agent, "GET", "/cameras/north/ptz")
    state = json.loads(text)
    assert status == 200 and (state["pan"], state["tilt"], state["zoom"]) == pytest.approx((0.4, 0.1, 0.2), abs=1e-3)
    assert state["holder"] == "alice" and {"token": "home", "name": "Home"} in state["presets"]

    status, text = agent_http(agent, "POST", "/cameras/north/ptz", {"action": "home"}, operator="bob")
    assert status == 409 and text.startswith("alice holds") and text.count("\n") == 1

    status, text = agent_http(agent, "POST", "/cameras/north/ptz", {"action": "move", "pan": 3}, operator="alice")
    assert status == 400 and text.startswith("pan:") and text.count("\n") == 1
    assert agent_http(agent, "POST", "/cameras/north/ptz", b"{not json", operator="alice")[0] == 400
    assert agent_http(agent, "POST", "/cameras/north/ptz", b"x" * 5000, operator="alice")[0] == 413
    assert agent_http(agent, "POST", "/cameras/fixed/ptz", {"action": "home"})[0] == 404  # no onvif: no PTZ
    assert agent_http(agent, "GET", "/cameras/nowhere/ptz")[0] == 404

    started = time.monotonic()
    assert agent_http(agent, "POST", "/cameras/north/ptz", {"action": "move", "pan": 0.5, "timeout_s": 0.5},
                 operator="alice")[0] == 200  # fmt: skip

    def still() -> float | None:
        first = json.loads(agent_http(agent, "GET", "/cameras/north/ptz")[1])["pan"]
        time.sleep(0.3)
        second = json.loads(agent_http(agent, "GET", "/cameras/north/ptz")[1])["pan"]
        return second if second == first and second > 0.45 else None

    final_pan = wait_until(still, 5, "the move to end by itself")
    assert final_pan < 0.4 + 0.5 * (time.monotonic() - started)  # it did not go on turning
    assert agent_http(agent, "POST", "/cameras/north/ptz", {"action": "home"}, operator="alice")[0] == 200
    unauthenticated = urllib.request.Request(agent.http_url + "/cameras/north/ptz", method="GET")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(unauthenticated, timeout=5)
    assert refused.value.code == 401


def test_ptz_over_mqtt_is_answered_on_its_result_topic(
    ipycam: IpyCamDevice, tmp_path: Path, broker: Any, mqtt_watcher_factory: Callable[..., Any],
    base_config: Callable[..., dict[str, Any]], agent_factory: Callable[..., AgentProcess],
) -> None:  # fmt: skip
    cameras = {
        "north": {"onvif": {"address": ipycam.onvif_address, "username": USER, "timeout_s": 2}, "password": PASSWORD},
        "fixed": {"url": ipycam.stream_url_with_user, "password": PASSWORD},
    }
    agent = agent_factory(base_config(tmp_path, broker, cameras))
    base = f"edgeagent/{agent.agent_id}"
    watcher = mqtt_watcher_factory(f"{base}/#")
    health = watcher.wait_for(f"{base}/cameras/north/health", lambda m: (m.json().get("onvif") or {}).get("ptz"), 30)
    assert health.json()["onvif"]["model"] == "VirtualCam-1"

    command = {"action": "absolute", "pan": -0.3, "tilt": 0.2, "zoom": 0.1, "operator": "desk-2"}
    watcher.publish(f"{base}/cameras/north/ptz", command)
    result = watcher.wait_for(f"{base}/cameras/north/ptz/result", None, 15).json()
    assert result == {"ok": True, "action": "absolute"}
    status, text = agent_http(agent, "GET", "/cameras/north/ptz")
    state = json.loads(text)
    assert (state["pan"], state["tilt"], state["zoom"]) == pytest.approx((-0.3, 0.2, 0.1), abs=1e-3)
    assert state["holder"] == "desk-2"  # the operator named in the MQTT command

    watcher.clear()
    watcher.publish(f"{base}/cameras/north/ptz", b"[1, 2")
    result = watcher.wait_for(f"{base}/cameras/north/ptz/result", None, 15).json()
    assert (result["ok"], result["status"]) == (False, 400)
    watcher.clear()
    watcher.publish(f"{base}/cameras/fixed/ptz", {"action": "home"})
    result = watcher.wait_for(f"{base}/cameras/fixed/ptz/result", None, 15).json()
    assert (result["ok"], result["status"]) == (False, 404)
