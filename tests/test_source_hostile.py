"""A hostile or broken device at the camera's address, met by the real RTSP source in-process.

A fake camera that offers only Basic auth over plain RTSP must not get the password; an rtsps:// impostor
whose certificate fails the check (CA file, the system's CAs, or a pinned fingerprint) gets nothing at all;
one whose SPS declares an absurd picture size must be reported with that error, not online at 0x0. The real digest
simulator still works, and the source says what it is waiting for while it is not online.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ssl
import time
from collections.abc import Callable, Iterator

import pytest
from pydantic import SecretStr

from edgeagent.camera.challenge import BASIC_REFUSED
from edgeagent.camera.failures import WAITING_AFTER_AUTH_FAILURE, WAITING_AFTER_CAMERA_ERROR, WAITING_FOR_CONNECTIONS
from edgeagent.camera.hub import CameraHub
from edgeagent.camera.source import CameraSource, CameraState
from edgeagent.config import CameraSection
from tests.support.broker import make_tls_files
from tests.support.fake_rtsp import FakeRtspServer, Request, rtsp_answer
from tests.support.h264_bits import PPS, baseline_sps
from tests.support.net import free_port

PASSWORD = "hunter2-not-for-impostors"


@pytest.fixture
def fake_camera() -> Iterator[Callable[..., FakeRtspServer]]:
    servers: list[FakeRtspServer] = []

    def make(answer: Callable[[Request], bytes | None], tls: ssl.SSLContext | None = None) -> FakeRtspServer:
        servers.append(FakeRtspServer(answer, tls))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


async def until(predicate: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within_s} s: {what}")
        await asyncio.sleep(0.05)


def source_for(url: str, password: str | None = PASSWORD, **settings: object) -> CameraSource:
    """The real source for ``url``; ``settings`` are fields of the camera's section."""
    section = CameraSection(url=url, stall_timeout_s=2, open_timeout_s=3, **settings)  # type: ignore[arg-type]
    return CameraSource("north", section, SecretStr(password) if password else None, CameraHub("north"))


def basic_only(request: Request) -> bytes:
    if "authorization" in request.headers:
        return rtsp_answer(request, "403 Forbidden")
    return rtsp_answer(request, "401 Unauthorized", {"WWW-Authenticate": 'Basic realm="camera"'})


async def test_a_camera_offering_only_basic_over_plain_rtsp_never_gets_the_password(fake_camera) -> None:
    server = fake_camera(basic_only)
    source = source_for(server.url("viewer"))
    source.start()
    try:
        await until(lambda: source.last_error == BASIC_REFUSED, 10, "the refusal is reported")
        assert source.state != CameraState.ONLINE
        assert source.waiting_for == WAITING_AFTER_AUTH_FAILURE and source.retry_at is not None
        await until(lambda: len(server.requests) >= 2, 5, "a second, backed-off attempt")
        assert server.authorizations() == []
        assert all(PASSWORD not in repr(request) for request in server.requests)
    finally:
        await source.stop()


async def test_basic_is_sent_when_the_camera_config_allows_it(fake_camera) -> None:
    server = fake_camera(basic_only)
    source = source_for(server.url("viewer"), allow_basic_auth=True)
    source.start()
    try:
        await until(lambda: bool(server.authorizations()), 10, "FFmpeg answers the Basic challenge")
        expected = base64.b64encode(f"viewer:{PASSWORD}".encode()).decode()
        assert server.authorizations()[0] == f"Basic {expected}"
    finally:
        await source.stop()


async def test_the_digest_simulator_camera_still_comes_online(camera_factory) -> None:
    camera = camera_factory(user="viewer", password=PASSWORD, width=320, height=180)
    source = source_for(camera.url_with_user)
    source.start()
    try:
        await until(lambda: source.state == CameraState.ONLINE, 15, "online with Digest")
        assert source.waiting_for is None and source.last_error is None
    finally:
        await source.stop()


def absurd_sps_camera(request: Request) -> bytes | None:
    sprop = ",".join(base64.b64encode(unit).decode() for unit in (baseline_sps(16384, 16384), PPS))
    sdp = (
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n"
        f"a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;sprop-parameter-sets={sprop}\r\n"
        "a=control:track1\r\n"
    ).encode()
    if request.method == "DESCRIBE":
        headers = {"Content-Type": "application/sdp", "Content-Base": request.url + "/"}
        return rtsp_answer(request, "200 OK", headers, sdp)
    if request.method == "SETUP":
        return rtsp_answer(request, "200 OK", {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1", "Session": "7"})
    return rtsp_answer(request, "200 OK", {"Session": "7", "Public": "DESCRIBE, SETUP, PLAY, TEARDOWN"})


async def test_a_stream_whose_sps_declares_16384_square_is_an_error_not_online(fake_camera) -> None:
    server = fake_camera(absurd_sps_camera)
    source = source_for(server.url(), password=None)
    online_seen = []
    source.on_state_change(lambda s: online_seen.append(s.state == CameraState.ONLINE))
    source.start()
    try:
        await until(lambda: source.last_error is not None and "16384x16384" in source.last_error, 15, "size error")
        assert "picture size is unusable" in (source.last_error or "")
        assert not any(online_seen) and source.state != CameraState.ONLINE and source.connects == 0
        assert source.waiting_for == WAITING_AFTER_CAMERA_ERROR
    finally:
        await source.stop()


async def test_a_source_waiting_for_an_absent_camera_says_so() -> None:
    source = source_for(f"rtsp://viewer@127.0.0.1:{free_port()}/stream1")
    source.start()
    try:
        await until(lambda: source.waiting_for == WAITING_FOR_CONNECTIONS, 5, "waiting for connections")
        assert source.state == CameraState.OFFLINE and source.last_error == "connection refused"
        assert source.retry_at is None  # no backoff: it connects as soon as the camera accepts
    finally:
        await source.stop()


# -- rtsps:// certificates ------------------------------------------------------------------------------


@pytest.fixture
def tls_camera(fake_camera, tls_files) -> FakeRtspServer:
    """A Basic-only camera over rtsps:// with the test CA's certificate for 127.0.0.1."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_files.server_cert, tls_files.server_key)
    return fake_camera(basic_only, tls=context)


def server_fingerprint(tls_files) -> str:
    der = ssl.PEM_cert_to_DER_cert(tls_files.server_cert.read_text())
    return hashlib.sha256(der).hexdigest()


async def test_rtsps_camera_checked_with_its_ca_gets_the_password(tls_camera, tls_files) -> None:
    source = source_for(tls_camera.url("viewer"), tls_ca_file=tls_files.ca_file)
    source.start()
    try:
        await until(lambda: bool(tls_camera.authorizations()), 10, "Basic sent over a verified TLS connection")
    finally:
        await source.stop()


async def test_rtsps_impostor_with_a_certificate_of_another_ca_gets_nothing(tls_camera, tmp_path) -> None:
    other = make_tls_files(tmp_path / "other-ca")  # "not the camera": a certificate the camera's CA never signed
    source = source_for(tls_camera.url("viewer"), tls_ca_file=other.ca_file)
    source.start()
    try:
        await until(lambda: "failed verification" in (source.last_error or ""), 10, "the certificate is refused")
        assert source.waiting_for == WAITING_AFTER_CAMERA_ERROR and source.state != CameraState.ONLINE
        assert tls_camera.requests == [] and tls_camera.handshakes_failed >= 1
    finally:
        await source.stop()


async def test_rtsps_pinned_fingerprint_is_enforced(fake_camera, tls_camera, tls_files) -> None:
    wrong = source_for(tls_camera.url("viewer"), tls_fingerprint_sha256="ab" * 32)
    wrong.start()
    try:
        await until(lambda: "does not match" in (wrong.last_error or ""), 10, "a wrong pin is refused")
        assert tls_camera.requests == []
    finally:
        await wrong.stop()
    right = source_for(tls_camera.url("viewer"), tls_fingerprint_sha256=server_fingerprint(tls_files))
    right.start()
    try:
        await until(lambda: bool(tls_camera.authorizations()), 10, "the pinned camera gets the password")
    finally:
        await right.stop()


async def test_rtsps_without_a_configured_check_is_verified_against_the_system_cas(tls_camera) -> None:
    source = source_for(tls_camera.url("viewer"))  # the test CA is not among the system's
    source.start()
    try:
        await until(lambda: "failed verification with the system's CAs" in (source.last_error or ""), 10, "refused")
        assert tls_camera.requests == [] and tls_camera.authorizations() == []
    finally:
        await source.stop()
