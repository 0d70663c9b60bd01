"""The agent as a real process with two rtsps:// cameras: the real one (the simulator, Digest auth, its CA)
comes online and serves snapshots; an impostor at the other address with a certificate of another CA is
reported with a clear error, gets not one byte, and no password is ever in the agent's log."""

from __future__ import annotations

import json
import time

from tests.support.broker import make_tls_files
from tests.support.hostile import get, http_address
from tests.support.net import wait_for_port
from tests.support.tls_device import TlsDevice

PASSWORD = "not-for-impostors-8"


def cameras_by_name(agent) -> dict[str, dict]:
    status, body, _ = get(agent, "/cameras", agent.token, timeout_s=5)
    assert status == 200
    return {entry["name"]: entry["health"] for entry in json.loads(body)["cameras"]}


def test_agent_with_rtsps_cameras_trusts_only_the_real_one(
    camera_factory, agent_factory, base_config, tls_files, tmp_path
) -> None:
    camera = camera_factory(user="viewer", password=PASSWORD, width=320, height=180, fps=15,
                            tls_cert=tls_files.server_cert, tls_key=tls_files.server_key)  # fmt: skip
    other = make_tls_files(tmp_path / "other")
    impostor = TlsDevice(other.server_cert, other.server_key)
    try:
        cameras = {
            "north": {"url": camera.url_with_user, "tls_ca_file": str(tls_files.ca_file), "password": PASSWORD},
            "south": {"url": impostor.url(), "tls_ca_file": str(tls_files.ca_file), "password": PASSWORD},
        }
        agent = agent_factory(base_config(tmp_path, None, cameras))
        wait_for_port(*http_address(agent), timeout=20, alive=lambda: agent.running)
        deadline = time.monotonic() + 30
        while True:
            health = cameras_by_name(agent)
            north, south = health["north"], health["south"]
            if north["state"] == "online" and "failed verification" in (south["last_error"] or ""):
                break
            assert time.monotonic() < deadline, health
            time.sleep(0.2)
        deadline = time.monotonic() + 20
        while (status := get(agent, "/cameras/north/snapshot.jpg", agent.token, timeout_s=5))[0] != 200:
            assert time.monotonic() < deadline, status[:2]
            time.sleep(0.2)
        assert status[1].startswith(b"\xff\xd8")  # a JPEG from the stream that came through the relay
        assert south["state"] != "online"
        assert impostor.connections >= 1 and bytes(impostor.received) == b""
        assert PASSWORD not in agent.log_text()
    finally:
        impostor.close()
