"""A camera back after an outage of any length is online within 2 s of accepting RTSP again.

The real simulator is stopped (a reboot: its port refuses) or replaced by a listener that drops every SYN
(an address that stops answering: no RST, no ARP), then started again on the same port; the time is taken
from the simulator's READY line to the agent's retained `online` status.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

STATUS = "edgeagent/cabinet-17/cameras/north/status"
HEALTH = "edgeagent/cabinet-17/cameras/north/health"
PASSWORD = "cam-secret-4711"
BACK_WITHIN_S = 2.0

pytestmark = pytest.mark.timed


@pytest.fixture
def camera(camera_factory):
    return camera_factory(user="viewer", password=PASSWORD, fps=25, gop_s=1.0, width=320, height=180)


@pytest.fixture
def agent_with(tmp_path, broker, agent_factory, mqtt_watcher_factory, base_config):
    def start(camera):
        watcher = mqtt_watcher_factory("edgeagent/#")
        entry = {"url": camera.url_with_user, "stall_timeout_s": 3, "snapshot": {"interval_s": 5, "width": 160}}
        config = base_config(tmp_path, broker, cameras={"north": entry}, camera_passwords={"north": PASSWORD})
        return agent_factory(config), watcher

    return start


@contextmanager
def syn_dropping(port: int) -> Iterator[None]:
    """The camera's port held by a listener whose accept queue is full: the kernel drops every new SYN."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(2):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        with pytest.raises(TimeoutError):  # the address now answers nothing
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        yield
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def back_online_after(camera, watcher, down_for_s: float, stopped_at: float) -> float:
    time.sleep(max(0.0, stopped_at + down_for_s - time.monotonic()))  # the scenario: the camera stays away
    camera.start()
    ready_at = time.monotonic()  # start() returns as the simulator prints READY
    online = watcher.wait_for(STATUS, lambda m: m.payload == b"online", timeout=15, since=stopped_at + 0.5)
    took = online.arrival - ready_at
    print(f"outage {down_for_s:.0f} s: online {took:.2f} s after the camera's READY")
    return took


def outage(camera, agent_with, down_for_s: float) -> float:
    _, watcher = agent_with(camera)
    watcher.wait_for(STATUS, lambda m: m.payload == b"online", timeout=20)
    stopped_at = time.monotonic()
    camera.stop()
    watcher.wait_for(STATUS, lambda m: m.payload == b"offline", timeout=10, since=stopped_at)
    return back_online_after(camera, watcher, down_for_s, stopped_at)


@pytest.mark.parametrize("down_for_s", [3, 30])
def test_online_within_two_seconds_after_an_outage(camera, agent_with, down_for_s) -> None:
    assert outage(camera, agent_with, down_for_s) <= BACK_WITHIN_S


@pytest.mark.slow
def test_online_within_two_seconds_after_a_two_minute_reboot(camera, agent_with) -> None:
    assert outage(camera, agent_with, 120) <= BACK_WITHIN_S


def test_camera_unreachable_at_start_comes_online_within_two_seconds(camera_factory, agent_with) -> None:
    camera = camera_factory(user="viewer", password=PASSWORD, width=320, height=180, start=False)
    started_at = time.monotonic()
    with syn_dropping(camera.port):
        _, watcher = agent_with(camera)
        watcher.wait_for(STATUS, lambda m: m.payload == b"offline", timeout=20)
        # The probe, not FFmpeg's connect, is what waits: health says what for, and why.
        health = json.loads(watcher.wait_for(HEALTH, lambda m: json.loads(m.payload)["last_error"], timeout=10).payload)
        assert (health["waiting_for"], health["last_error"]) == ("camera to accept connections", "no answer within 3 s")
        time.sleep(max(0.0, started_at + 8 - time.monotonic()))  # several probes time out unanswered
    assert back_online_after(camera, watcher, 0, started_at) <= BACK_WITHIN_S


def test_camera_whose_address_stops_answering_comes_back_within_two_seconds(camera, agent_with) -> None:
    _, watcher = agent_with(camera)
    watcher.wait_for(STATUS, lambda m: m.payload == b"online", timeout=20)
    stopped_at = time.monotonic()
    camera.kill()
    with syn_dropping(camera.port):
        watcher.wait_for(STATUS, lambda m: m.payload == b"offline", timeout=10, since=stopped_at)
        time.sleep(max(0.0, stopped_at + 10 - time.monotonic()))
    assert back_online_after(camera, watcher, 0, stopped_at) <= BACK_WITHIN_S
