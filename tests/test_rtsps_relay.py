"""rtsps:// cameras through the agent's own TLS relay (camera/tls_relay.py), met by the real source.

The real camera (the GStreamer simulator serving rtsps://, Digest auth) comes online with its CA, or with
its self-signed certificate pinned. A device that is "not the camera" (a certificate of another CA, one for
another name, one that does not match the pin) is never online, the error says why, and it receives not one
byte of RTSP: every byte it got is recorded and checked. The relay takes only this process's connection,
bounds what it buffers, and ends a silent session.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from edgeagent.camera import tls_relay
from edgeagent.camera.failures import WAITING_AFTER_CAMERA_ERROR
from edgeagent.camera.hub import CameraHub
from edgeagent.camera.source import CameraSource, CameraState
from edgeagent.camera.tls_check import fingerprint
from edgeagent.config import CameraSection
from tests.support.broker import TlsFiles, make_tls_files
from tests.support.tls_device import TlsDevice

PASSWORD = "not-for-impostors-7"


async def until(predicate: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within_s} s: {what}")
        await asyncio.sleep(0.05)


def source_for(url: str, **settings: object) -> CameraSource:
    section = CameraSection(url=url, stall_timeout_s=2, open_timeout_s=4, **settings)  # type: ignore[arg-type]
    return CameraSource("north", section, SecretStr(PASSWORD), CameraHub("north"))


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def cert_for_name(tls: TlsFiles, directory: Path, san: str) -> tuple[Path, Path]:
    """A certificate the camera's own CA signed, for another name (``san``, e.g. ``DNS:other.example``)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ext").write_text(f"extendedKeyUsage=serverAuth\nsubjectAltName={san}\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "k.pem",
            "-out", "r.csr", "-subj", "/CN=other", cwd=directory)  # fmt: skip
    openssl("x509", "-req", "-in", "r.csr", "-CA", str(tls.ca_file), "-CAkey", str(tls.ca_key), "-CAcreateserial",
            "-out", "c.pem", "-days", "30", "-extfile", "ext", cwd=directory)  # fmt: skip
    return directory / "c.pem", directory / "k.pem"


def self_signed(directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            "k.pem", "-out", "c.pem", "-days", "30", "-subj", "/CN=camera",
            "-addext", "subjectAltName=IP:127.0.0.1", cwd=directory)  # fmt: skip
    return directory / "c.pem", directory / "k.pem"


def pin_of(cert: Path) -> str:
    return fingerprint(ssl.PEM_cert_to_DER_cert(cert.read_text()))


@pytest.fixture
def devices() -> Iterator[Callable[..., TlsDevice]]:
    made: list[TlsDevice] = []

    def make(*args: object, **kwargs: object) -> TlsDevice:
        made.append(TlsDevice(*args, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for device in made:
        device.close()


def rtsps_camera(camera_factory, cert: Path, key: Path):
    return camera_factory(user="viewer", password=PASSWORD, width=320, height=180, fps=15,
                          tls_cert=cert, tls_key=key)  # fmt: skip


async def watch_online(source: CameraSource, within_s: float = 20) -> None:
    source.start()
    try:
        await until(lambda: source.state == CameraState.ONLINE, within_s, "online")
        before = source.hub.packets_total
        await until(lambda: source.hub.packets_total >= before + 10, 10, "frames keep flowing")
        assert source.last_error is None
    finally:
        await source.stop()


async def test_rtsps_camera_verified_with_its_ca_comes_online_and_frames_flow(camera_factory, tls_files) -> None:
    camera = rtsps_camera(camera_factory, tls_files.server_cert, tls_files.server_key)
    await watch_online(source_for(camera.url_with_user, tls_ca_file=tls_files.ca_file))


async def test_rtsps_camera_with_a_pinned_self_signed_certificate_comes_online(camera_factory, tmp_path) -> None:
    cert, key = self_signed(tmp_path / "self")
    camera = rtsps_camera(camera_factory, cert, key)
    await watch_online(source_for(camera.url_with_user, tls_fingerprint_sha256=pin_of(cert)))


@pytest.mark.parametrize("impostor", ["other CA", "other name", "wrong pin"])
async def test_a_device_that_is_not_the_camera_gets_not_one_byte(impostor, devices, tls_files, tmp_path) -> None:
    if impostor == "other CA":
        other = make_tls_files(tmp_path / "other")
        device, error = devices(other.server_cert, other.server_key), "failed verification"
        settings: dict[str, object] = {"tls_ca_file": tls_files.ca_file}
    elif impostor == "other name":
        cert, key = cert_for_name(tls_files, tmp_path / "name", "DNS:not-the-camera.example")
        device, settings, error = devices(cert, key), {"tls_ca_file": tls_files.ca_file}, "mismatch"
    else:  # a certificate the camera's CA did sign, for the right address, but not the pinned one
        device = devices(tls_files.server_cert, tls_files.server_key)
        settings, error = {"tls_fingerprint_sha256": pin_of(self_signed(tmp_path / "pin")[0])}, "does not match"
    source = source_for(device.url(), **settings)
    states: list[CameraState] = []
    source.on_state_change(lambda s: states.append(s.state))
    source.start()
    try:
        await until(lambda: error in (source.last_error or ""), 10, f"the certificate is refused ({error})")
        assert source.waiting_for == WAITING_AFTER_CAMERA_ERROR  # the camera "said no": backoff
        assert CameraState.ONLINE not in states and source.connects == 0
        assert device.connections >= 1  # it was asked to prove who it is ...
        assert bytes(device.received) == b""  # ... and got no request, so no credentials
    finally:
        await source.stop()


async def test_the_relay_takes_only_this_process_connection(devices, tls_files) -> None:
    device = devices(tls_files.server_cert, tls_files.server_key, answer=b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n")
    section = CameraSection(url=device.url(), tls_ca_file=tls_files.ca_file)
    relay = await tls_relay.open_relay(section, timeout_s=5, idle_s=10)
    try:
        stranger = (
            f"import socket; s = socket.create_connection(('127.0.0.1', {relay.port}), 5); s.settimeout(5); "
            "s.sendall(b'OPTIONS rtsp://x/ RTSP/1.0\\r\\nCSeq: 1\\r\\nAuthorization: Basic eA==\\r\\n\\r\\n'); "
            "print(repr(s.recv(100)))"
        )
        result = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", stranger], capture_output=True, text=True, timeout=20
        )
        assert "b''" in result.stdout or "ConnectionResetError" in result.stderr, (result.stdout, result.stderr)
        assert relay.refused == 1 and not relay.claimed and bytes(device.received) == b""

        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(b"OPTIONS rtsp://127.0.0.1/stream1 RTSP/1.0\r\nCSeq: 1\r\n\r\n")
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(b"RTSP/1.0 200 OK")
        assert relay.claimed and bytes(device.received).startswith(b"OPTIONS rtsp://127.0.0.1/stream1")
        with pytest.raises(ConnectionRefusedError):  # the listener closed once FFmpeg's connection was taken
            await asyncio.open_connection("127.0.0.1", relay.port)
        writer.close()
    finally:
        relay.close()


async def test_a_client_that_does_not_read_bounds_the_relay_buffer(devices, tls_files) -> None:
    device = devices(tls_files.server_cert, tls_files.server_key, flood=True)
    section = CameraSection(url=device.url(), tls_ca_file=tls_files.ca_file)
    relay = await tls_relay.open_relay(section, timeout_s=5, idle_s=30)
    client = socket.create_connection(("127.0.0.1", relay.port))
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    client.sendall(b"PLAY rtsp://127.0.0.1/stream1 RTSP/1.0\r\nCSeq: 4\r\n\r\n")
    try:
        await until(lambda: relay.claimed, 5, "the client is taken")
        local, camera = relay.local.transport, relay.camera.transport
        assert local is not None and camera is not None
        await until(lambda: not camera.is_reading(), 10, "the camera side is no longer read")
        await asyncio.sleep(1.0)  # the kernel's buffers between camera and relay fill
        sent = device.sent
        await asyncio.sleep(0.5)  # a window in which an unbounded relay would keep reading
        assert device.sent == sent and not relay.closed  # the camera blocks: flow control reached it
        assert local.get_write_buffer_size() <= tls_relay.HIGH_WATER_BYTES + 2**18  # a read may overshoot
    finally:
        client.close()
        relay.close()


async def test_a_silent_camera_ends_the_relay_session(devices, tls_files) -> None:
    device = devices(tls_files.server_cert, tls_files.server_key)  # answers nothing
    section = CameraSection(url=device.url(), tls_ca_file=tls_files.ca_file)
    relay = await tls_relay.open_relay(section, timeout_s=1, idle_s=1)
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    try:
        assert await asyncio.wait_for(reader.read(100), 5) == b""  # closed within the idle bound
        assert relay.closed and "sent nothing" in (relay.why_closed or "")
    finally:
        writer.close()


async def test_an_unclaimed_relay_closes_its_camera_connection(devices, tls_files) -> None:
    device = devices(tls_files.server_cert, tls_files.server_key)
    section = CameraSection(url=device.url(), tls_ca_file=tls_files.ca_file)
    relay = await tls_relay.open_relay(section, timeout_s=1, idle_s=10)
    await until(lambda: relay.closed, 5, "closed after the accept deadline")
    assert "did not connect" in (relay.why_closed or "")


def test_rtsps_refuses_udp_transport_in_the_configuration() -> None:
    with pytest.raises(ValidationError, match="transport: udp cannot carry rtsps://"):
        CameraSection(url="rtsps://10.0.0.1/s", transport="udp")
    assert CameraSection(url="rtsp://10.0.0.1/s", transport="udp").transport == "udp"
