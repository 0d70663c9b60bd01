"""Configuration reload (SIGHUP): cameras added, removed and changed live; the others never notice.

The agent runs as a real process with real cameras (GStreamer) and a real broker; a Python viewer
(aiortc, over WHEP) watches an untouched camera across the reloads and counts its frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import re
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pydantic import SecretStr

from edgeagent import reload
from edgeagent.agent import Agent
from edgeagent.config import Config, load_config
from edgeagent.config_diff import compare, running_config
from tests.support import AgentProcess, base_config
from tests.support.live_client import PythonViewer

CAMERA = {"width": 320, "height": 180, "fps": 25, "gop_s": 1}


# -- the plan, without a process ---------------------------------------------------------------------


def _config(**over: Any) -> Config:
    document: dict[str, Any] = {
        "agent": {"id": "cabinet-17", "state_dir": "/tmp/x"},
        "http": {"listen": "127.0.0.1:8080"},
        "mqtt": {"host": "broker.example", "port": 1883},
        "cameras": {"north": {"url": "rtsp://u@10.0.0.1/a"}, "south": {"url": "rtsp://u@10.0.0.2/a"}},
    }
    for key, value in over.items():
        document[key] = value
    return Config.model_validate(document)


def test_the_plan_names_added_removed_changed_and_untouched_cameras() -> None:
    old = _config()
    new = _config(cameras={"north": {"url": "rtsp://u@10.0.0.1/a", "snapshot": {"width": 320}},
                           "south": {"url": "rtsp://u@10.0.0.2/a"}, "east": {"url": "rtsp://u@10.0.0.3/a"}})
    changes = compare(old, new)
    assert (changes.added, changes.removed, changes.changed, changes.unchanged) == (
        ("east",), (), ("north",), ("south",))
    assert changes.needs_restart == ()
    running = running_config(old, new, changes)
    assert running.cameras["south"] is old.cameras["south"]  # the untouched camera keeps its very section
    assert running.cameras["north"] is new.cameras["north"]
    assert list(running.cameras) == ["north", "south", "east"]


def test_a_new_password_under_the_same_file_name_restarts_the_camera() -> None:
    old, new = _config(), _config()
    for config, password in ((old, "first-secret"), (new, "second-secret")):
        config.cameras["north"]._password = SecretStr(password)
        config.cameras["south"]._password = SecretStr("same")
    changes = compare(old, new)
    assert changes.changed == ("north",) and changes.unchanged == ("south",)


def test_fields_that_need_a_restart_are_named_and_live_ones_applied() -> None:
    old = _config()
    new = _config(
        agent={"id": "cabinet-18", "state_dir": "/tmp/x", "health_interval_s": 3, "log_level": "debug"},
        http={"listen": "127.0.0.1:8081"},
        mqtt={"host": "broker.example", "port": 8883, "client_id": "other"},
        webrtc={"max_viewers_total": 3},
    )
    new.mqtt._password = SecretStr("a new broker password")  # type: ignore[union-attr]
    changes = compare(old, new)
    assert set(changes.needs_restart) == {
        f"{field} changed: restart the agent to apply"
        for field in ("agent.id", "http.listen", "mqtt.port", "mqtt.client_id", "mqtt.password",
                      "webrtc.max_viewers_total")
    }
    assert all("a new broker password" not in line for line in changes.needs_restart)
    assert set(changes.live_fields) == {"agent.health_interval_s", "agent.log_level"}
    running = running_config(old, new, changes)
    assert running.agent.health_interval_s == 3 and running.agent.id == "cabinet-17"
    assert running.http.listen == "127.0.0.1:8080"
    without_mqtt = compare(old, _config(mqtt=None))
    assert without_mqtt.needs_restart == ("mqtt changed: restart the agent to apply",)


# -- the agent as a process ---------------------------------------------------------------------------


def _get(agent: Any, path: str) -> Any:
    request = urllib.request.Request(agent.http_url + path, headers={"Authorization": f"Bearer {agent.token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        body = response.read()
    return json.loads(body) if path == "/cameras" else body


async def _cameras(agent: Any) -> dict[str, dict[str, Any]]:
    document = await asyncio.to_thread(_get, agent, "/cameras")
    return {entry["name"]: entry["health"] for entry in document["cameras"]}


def _whep(agent: Any, camera: str, offer: str) -> str:
    request = urllib.request.Request(
        f"{agent.http_url}/whep/{camera}", data=offer.encode(), method="POST",
        headers={"Authorization": f"Bearer {agent.token}", "Content-Type": "application/sdp"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
        return response.read().decode()


def _jpeg_width(jpeg: bytes) -> int:
    return int(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape[1])


class FrameWatch:
    """The longest stretch without a new decoded frame, sampled every 20 ms while it runs."""

    def __init__(self, viewer: PythonViewer) -> None:
        self.viewer = viewer
        self.longest_gap_s = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        frames, since = self.viewer.frames, time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            now = time.monotonic()
            if self.viewer.frames != frames:
                frames, since = self.viewer.frames, now
            self.longest_gap_s = max(self.longest_gap_s, now - since)

    def __enter__(self) -> FrameWatch:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def _reload(agent: Any, config: dict[str, Any]) -> tuple[str, float]:
    """Write ``config``, SIGHUP the agent, wait for the outcome line; (that line, seconds to it)."""
    mark = agent.log_mark()
    agent.write_config(config)
    started = time.monotonic()
    os.kill(agent.pid, signal.SIGHUP)
    line = await asyncio.to_thread(agent.wait_log, r"reload: (applied in|.* not applied)", 30, mark)
    return line, time.monotonic() - started


@pytest.fixture
def two_cameras(camera_factory: Any) -> tuple[Any, Any]:
    return camera_factory(**CAMERA), camera_factory(**CAMERA)


@pytest.mark.timed
async def test_cameras_are_added_removed_and_restarted_while_an_untouched_one_and_its_viewer_go_on(
    tmp_path: Path, broker: Any, two_cameras: Any, agent_factory: Any, mqtt_watcher_factory: Any,
) -> None:
    cam_a, cam_b = two_cameras
    config = base_config(tmp_path, broker, {"north": cam_a, "south": cam_b},
                         webrtc={"host_addresses": ["127.0.0.1"]})
    for name in ("north", "south"):
        config["cameras"][name]["snapshot"] = {"interval_s": 1, "width": 160}
    agent = agent_factory(config)
    base = f"edgeagent/{agent.agent_id}"
    watcher = mqtt_watcher_factory(f"{base}/#")
    for name in ("north", "south"):
        await asyncio.to_thread(watcher.wait_for, f"{base}/cameras/{name}/status", lambda m: m.payload == b"online", 30)

    viewer = PythonViewer()
    north_viewer = PythonViewer()  # on the camera that will change: its session ends with the old camera
    try:
        answer = await asyncio.to_thread(_whep, agent, "south", await viewer.offer())
        await viewer.accept(answer)
        await north_viewer.accept(await asyncio.to_thread(_whep, agent, "north", await north_viewer.offer()))
        await viewer.wait_frames(25, within_s=15)
        await north_viewer.wait_frames(5, within_s=15)
        before = await _cameras(agent)

        # 1. add east (on camera B's stream) and give north a new snapshot width.
        grown = copy.deepcopy(config)
        grown["cameras"]["east"] = copy.deepcopy(grown["cameras"]["south"])
        grown["cameras"]["north"]["snapshot"]["width"] = 240
        since = time.monotonic()
        frames_before = viewer.frames
        with FrameWatch(viewer) as watch:
            line, seconds = await _reload(agent, grown)
            assert "applied in" in line, line
            await asyncio.to_thread(
                watcher.wait_for, f"{base}/cameras/east/status", lambda m: m.payload == b"online", 20, since=since)
            await asyncio.to_thread(
                watcher.wait_for, f"{base}/cameras/north/status", lambda m: m.payload == b"online", 20, since=since)
            east_online_s = watcher.last(f"{base}/cameras/east/status").arrival - since  # type: ignore[union-attr]
            north_online_s = watcher.last(f"{base}/cameras/north/status").arrival - since  # type: ignore[union-attr]
            snapshot = await asyncio.to_thread(
                watcher.wait_for, f"{base}/cameras/north/snapshot", lambda m: _jpeg_width(m.payload) == 240, 20,
                since=since)
            await viewer.wait_frames(frames_before + 50, within_s=10)
        applied_s = float(re.search(r"applied in ([\d.]+) s", line).group(1))  # type: ignore[union-attr]
        # north restarted: offline then online again on its status topic, its snapshot at the new width
        north = [m.text for m in watcher.messages(f"{base}/cameras/north/status") if m.arrival >= since]
        assert north[:1] == ["offline"] and "online" in north, north
        assert snapshot.payload
        # south untouched: no status message, same connection, no gap for its viewer
        assert [m for m in watcher.messages(f"{base}/cameras/south/status") if m.arrival >= since] == []
        after = await _cameras(agent)
        assert set(after) == {"north", "south", "east"}
        assert after["south"]["reconnects_total"] == before["south"]["reconnects_total"] == 0
        assert after["south"]["last_packet_age_s"] < 0.5
        assert after["south"]["live"]["viewers_connected"] == 1
        assert after["north"]["live"]["viewers"] == 0
        assert re.search(r"session \S+ for camera north closed: camera reconfigured", agent.log_text())
        assert watch.longest_gap_s < 0.5, f"the viewer saw no frame for {watch.longest_gap_s:.2f} s"
        assert _jpeg_width(await asyncio.to_thread(_get, agent, "/cameras/east/snapshot.jpg")) == 160
        print(f"\nreload add+change: applied in {applied_s:.3f} s (SIGHUP to log line {seconds:.3f} s); "
              f"south reconnects {after['south']['reconnects_total']}; viewer frames "
              f"{frames_before} -> {viewer.frames}, longest gap {watch.longest_gap_s * 1000:.0f} ms; "
              f"east online {east_online_s:.2f} s, north back online {north_online_s:.2f} s after SIGHUP")

        # 2. remove east: offline, then its retained topics cleared; the others untouched.
        since = time.monotonic()
        with FrameWatch(viewer) as watch:
            shrunk = copy.deepcopy(grown)
            del shrunk["cameras"]["east"]
            line, _ = await _reload(agent, shrunk)
            assert "applied in" in line, line
            status = await asyncio.to_thread(
                watcher.wait_for_count, f"{base}/cameras/east/status", 2, None, 10, since=since)
            await viewer.wait_frames(viewer.frames + 25, within_s=10)
        assert [m.payload for m in status] == [b"offline", b""], status
        assert watch.longest_gap_s < 0.5
        after_removal = await _cameras(agent)
        assert set(after_removal) == {"north", "south"}
        assert after_removal["south"]["reconnects_total"] == 0
        assert after_removal["north"]["reconnects_total"] == after["north"]["reconnects_total"]
        # a fresh subscriber gets no retained message for the removed camera
        fresh = mqtt_watcher_factory(f"{base}/cameras/east/#")
        await asyncio.sleep(0.5)
        assert fresh.messages() == []
        with pytest.raises(urllib.error.HTTPError) as gone:
            await asyncio.to_thread(_get, agent, "/cameras/east/snapshot.jpg")
        assert gone.value.code == 404
        late = PythonViewer()
        try:
            with pytest.raises(urllib.error.HTTPError) as refused:
                await asyncio.to_thread(_whep, agent, "east", await late.offer())
            assert refused.value.code == 404
        finally:
            await late.close()
        print(f"reload remove: applied in {line.split('applied in ')[1].split(' s')[0]} s; "
              f"longest viewer gap {watch.longest_gap_s * 1000:.0f} ms")
    finally:
        await viewer.close()
        await north_viewer.close()
    assert "Traceback" not in agent.log_text()


async def test_a_bad_file_changes_nothing_and_fields_that_need_a_restart_say_so(
    tmp_path: Path, broker: Any, camera_factory: Any, agent_factory: Any, mqtt_watcher_factory: Any,
) -> None:
    config = base_config(tmp_path, broker, {"north": camera_factory(**CAMERA)})
    agent = agent_factory(config)
    base = f"edgeagent/{agent.agent_id}"
    watcher = mqtt_watcher_factory(f"{base}/#")
    await asyncio.to_thread(watcher.wait_for, f"{base}/cameras/north/status", lambda m: m.payload == b"online", 30)

    # Two problems, two lines, as check-config prints them; nothing stops, nothing starts.
    bad = copy.deepcopy(config)
    bad["cameras"]["north"]["snapshot"] = {"width": 3}
    bad["cameras"]["west"] = {"url": "rtsp://127.0.0.1:9/x", "colour": "red"}
    since = time.monotonic()
    mark = agent.log_mark()
    line, _ = await _reload(agent, bad)
    assert "not applied (2 problem(s))" in line, line
    errors = [text for text in agent.log_text().splitlines()[mark:] if "reload: config error:" in text]
    assert len(errors) == 2, errors
    assert any("cameras.north.snapshot.width" in text for text in errors)
    assert any("cameras.west.colour: unknown key" in text for text in errors)
    assert set(await _cameras(agent)) == {"north"}
    await asyncio.sleep(0.3)
    assert [m for m in watcher.messages(f"{base}/cameras/+/status") if m.arrival >= since] == []

    # A new listen address is named, not silently ignored; the agent keeps serving where it was.
    moved = copy.deepcopy(config)
    moved["http"]["listen"] = "127.0.0.1:1"
    mark = agent.log_mark()
    line, _ = await _reload(agent, moved)
    assert "applied in" in line and "0 added" not in line, line
    await asyncio.to_thread(agent.wait_log, r"http\.listen changed: restart the agent to apply", 5, mark)
    agent.config = config  # the file says port 1; the agent still serves where it started
    cameras = await _cameras(agent)
    assert cameras["north"]["reconnects_total"] == 0
    with contextlib.suppress(Exception):
        agent.terminate()


def test_systemd_hears_reloading_then_ready_and_the_unit_reloads_with_sighup(tmp_path: Path) -> None:
    unit = (Path(__file__).resolve().parent.parent / "systemd" / "edgeagent.service").read_text()
    assert re.search(r"^ExecReload=/bin/kill -HUP \$MAINPID$", unit, re.M)
    notify_path = tmp_path / "notify.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(notify_path))
    receiver.settimeout(20)
    config = base_config(tmp_path, None, {})
    agent = AgentProcess(config, tmp_path, env={"NOTIFY_SOCKET": str(notify_path)}).start()
    try:
        assert receiver.recv(4096) == b"READY=1"
        os.kill(agent.pid, signal.SIGHUP)  # type: ignore[arg-type]
        reloading = receiver.recv(4096).decode().split("\n")
        assert reloading[0] == "RELOADING=1"
        sent_usec = int(reloading[1].removeprefix("MONOTONIC_USEC="))
        assert abs(time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000 - sent_usec) < 5_000_000
        assert receiver.recv(4096) == b"READY=1"
        assert agent.terminate()[0] == 0
    finally:
        agent.close()
        receiver.close()


async def test_an_untouched_camera_keeps_its_very_objects_and_a_changed_one_gets_new_ones(tmp_path: Path) -> None:
    """In process, so object identity can be seen: the cameras point at a closed port (they retry)."""

    config = base_config(tmp_path, None, {
        "north": {"url": "rtsp://127.0.0.1:9/a"}, "south": {"url": "rtsp://127.0.0.1:9/b"},
    })
    path = tmp_path / "edgeagent.yaml"
    path.write_text(json.dumps(config))
    agent = Agent(load_config(path), path)
    async with contextlib.AsyncExitStack() as stack:
        await agent._start(stack)
        assert agent.live is not None
        south, north = agent.units["south"], agent.units["north"]
        health_task = agent._health_task
        changed = copy.deepcopy(config)
        changed["cameras"]["north"]["transport"] = "udp"
        changed["cameras"]["west"] = {"url": "rtsp://127.0.0.1:9/c"}
        changed["agent"]["health_interval_s"] = 5
        path.write_text(json.dumps(changed))
        assert await reload.reload(agent)
        assert agent.units["south"] is south and agent.config.cameras["south"] is south.camera.section
        assert agent.units["north"] is not north and agent.units["north"].camera.section.transport == "udp"
        assert set(agent.units) == {"north", "south", "west"}
        assert set(agent.live._feeds) == {"north", "south", "west"}
        assert agent.live._feeds["south"].hub is south.camera.hub
        assert agent._health_task is not health_task and agent.config.agent.health_interval_s == 5
        assert north.camera.source._stopping.is_set() and not south.camera.source._stopping.is_set()
        del changed["cameras"]["west"]
        path.write_text(json.dumps(changed))
        assert await reload.reload(agent)
        assert set(agent.units) == {"north", "south"} and set(agent.live._feeds) == {"north", "south"}
        assert set(agent.cameras._snapshot_tasks) == {"north", "south"}
        assert set(agent.cameras._picture_tasks) == {"north", "south"}
        agent.request_stop()
