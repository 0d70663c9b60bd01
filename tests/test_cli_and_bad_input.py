"""The command line, and input that is wrong on purpose: corrupt bitstreams, hostile HTTP requests."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys

import pytest

from edgeagent import __version__
from edgeagent.camera.hub import CameraHub
from edgeagent.config import SnapshotSection
from edgeagent.media.snapshot import Snapshotter
from tests.support.packets import packet


def edgeagent(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeagent", *args],
        capture_output=True, text=True, timeout=timeout, env=dict(os.environ, **(env or {})),
    )


def test_version() -> None:
    result = edgeagent("--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"edgeagent {__version__}")


def test_probe_reports_codec_size_fps_gop_and_bitrate(camera_factory) -> None:
    camera = camera_factory(user="viewer", password="probe-secret-99", fps=25, gop_s=1.0)
    result = edgeagent(
        "probe", "--seconds", "4", camera.url_with_user, env={"EDGEAGENT_CAMERA_PASSWORD": "probe-secret-99"}
    )
    assert result.returncode == 0, result.stderr
    fields = dict(line.split(":", 1) for line in result.stdout.strip().splitlines())
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    assert fields["codec"] == "h264" and fields["size"] == "640x360"
    assert abs(float(fields["fps"]) - 25) < 2.5
    assert fields["gop"].startswith("1.0")
    assert float(fields["bitrate"].split()[0]) > 0
    assert "probe-secret-99" not in result.stdout + result.stderr


def test_probe_with_a_wrong_password_says_so(camera_factory) -> None:
    camera = camera_factory(user="viewer", password="probe-secret-99")
    result = edgeagent("probe", "--seconds", "3", camera.url_with_user, env={"EDGEAGENT_CAMERA_PASSWORD": "wrong"})
    assert result.returncode == 1
    assert "authentication failed" in result.stderr and "wrong" not in result.stderr.replace("wrong password", "")


def test_probe_refuses_a_password_in_the_url() -> None:
    result = edgeagent("probe", "rtsp://viewer:secret@127.0.0.1:9/stream1")
    assert result.returncode == 2 and "password" in result.stderr and "secret" not in result.stderr



@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x00\x00\x01\x65" + bytes(range(256)) * 40,  # an IDR slice with no parameter sets, garbage body
        b"\x00\x00\x00\x01\x67\xff\xff\xff\x00\x00\x00\x01\x68\xff\x00\x00\x00\x01\x65\xff\xff",  # corrupt SPS
        os.urandom(50_000),
    ],
    ids=["empty", "garbage-slice", "corrupt-sps", "random"],
)
async def test_corrupt_keyframe_gives_no_snapshot_and_no_crash(data: bytes) -> None:
    hub = CameraHub("north")
    hub.publish(packet(keyframe=True, data=data, arrival=1.0))
    snapshotter = Snapshotter("north", SnapshotSection(), [], hub)
    assert await snapshotter.snapshot() is None
    assert snapshotter.failures == 1 and snapshotter.last_error


def raw_request(port: int, request: bytes) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_hostile_http_requests_get_clear_errors_and_the_agent_carries_on(
    tmp_path, agent_factory, base_config
) -> None:
    agent = agent_factory(base_config(tmp_path, None, cameras={}))
    agent.wait_log("http: listening", timeout=20)
    port = int(agent.http_url.rsplit(":", 1)[1])
    auth = {"Authorization": f"Bearer {agent.token}"}

    def request(method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request(method, path, body=body, headers=headers or {})
        status = connection.getresponse().status
        connection.close()
        return status

    assert request("GET", "/static/../../../etc/passwd") in (403, 404)
    assert request("GET", "/static/%2e%2e/%2e%2e/config.py") in (403, 404)
    assert request("GET", "/cameras/../../etc/passwd", headers=auth) == 404
    sdp = {**auth, "Content-Type": "application/sdp"}
    assert request("POST", "/whep/north", body=b"v=0\r\n" * 100_000, headers=sdp) == 413
    assert request("DELETE", "/cameras", headers=auth) == 405
    assert request("GET", "/cameras", headers={"Authorization": "Bearer " + "x" * 1_000}) == 401
    assert request("GET", "/cameras", headers={"Authorization": "Bearer " + "x" * 10_000}) == 400  # header too long
    assert request("GET", "/cameras", headers={"Authorization": "Bearer"}) == 401
    reply = raw_request(port, b"GARBAGE / HTTP/9.9\r\n\r\n")
    assert reply.startswith(b"HTTP/1.") and b" 400 " in reply.split(b"\r\n", 1)[0] + b" "
    reply = raw_request(port, b"\x16\x03\x01\x02\x00" + os.urandom(500))  # TLS on the plain port
    assert reply.startswith(b"HTTP/1.") and b" 400 " in reply.split(b"\r\n", 1)[0] + b" "
    assert request("GET", "/cameras", headers=auth) == 200
    assert request("GET", "/healthz") == 200
    assert agent.alive()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/healthz")
    response = connection.getresponse()
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert "default-src 'self'" in response.getheader("Content-Security-Policy")
    assert response.getheader("Server") == "edgeagent"  # no versions for a scanner to match
    connection.close()
