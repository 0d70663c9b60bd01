"""Pure logic of the RTSP source: backoff, parameter sets, error descriptions, log redaction."""

from __future__ import annotations

import random

import av.error
import pytest

from edgeagent.camera.annexb import with_parameter_sets
from edgeagent.camera.failures import backoff_delay, describe_error
from edgeagent.logs import redact

SPS_PPS = b"\x00\x00\x00\x01\x67\x42\xc0\x1e" + b"\x00\x00\x00\x01\x68\xce\x3c\x80"
IDR = b"\x00\x00\x00\x01\x65\x88\x84\x00"


def test_backoff_doubles_from_one_second_and_caps_at_thirty_with_jitter() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(attempt, rng) for attempt in range(1, 10)]
    ceilings = [1, 2, 4, 8, 16, 30, 30, 30, 30]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert 0.75 * ceiling <= delay <= ceiling
    assert len({round(backoff_delay(6, rng), 6) for _ in range(20)}) > 1  # jittered


def test_keyframe_without_parameter_sets_gets_them_in_front() -> None:
    assert with_parameter_sets(IDR, "h264", SPS_PPS) == SPS_PPS + IDR


def test_keyframe_with_parameter_sets_is_left_alone() -> None:
    assert with_parameter_sets(SPS_PPS + IDR, "h264", SPS_PPS) == SPS_PPS + IDR
    aud = b"\x00\x00\x00\x01\x09\x10"
    assert with_parameter_sets(aud + SPS_PPS + IDR, "h264", SPS_PPS) == aud + SPS_PPS + IDR


def test_hevc_parameter_sets_are_recognised() -> None:
    vps = b"\x00\x00\x00\x01\x40\x01"  # type 32
    idr = b"\x00\x00\x00\x01\x26\x01"  # type 19
    assert with_parameter_sets(vps + idr, "hevc", vps) == vps + idr
    assert with_parameter_sets(idr, "hevc", vps) == vps + idr


def test_avcc_extradata_is_not_prepended() -> None:
    assert with_parameter_sets(IDR, "h264", b"\x01\x42\xc0\x1e") == IDR


def test_errors_are_described_without_the_url() -> None:
    auth = av.error.HTTPUnauthorizedError(-825242872, "Server returned 401 Unauthorized", "rtsp://u:pw@h/s")
    assert "authentication failed" in describe_error(auth)
    assert "pw" not in describe_error(auth)
    assert describe_error(ConnectionRefusedError()) == "connection refused"


def test_log_redaction_hides_passwords_in_urls() -> None:
    assert redact("open rtsp://viewer:hunter2@10.0.0.1/s failed") == "open rtsp://viewer:***@10.0.0.1/s failed"
    assert redact("mqtts://a:b@broker") == "mqtts://a:***@broker"
    assert redact("rtsp://10.0.0.1/s") == "rtsp://10.0.0.1/s"


# -- what follows a failure: probe for a camera that is away, backoff for one that says no -------------


def test_retry_policy_backs_off_only_after_refusals() -> None:
    from edgeagent.camera.failures import RetryPolicy

    policy = RetryPolicy()
    delays = [policy.after_attempt(connected=False, lasted_s=0.1, refused=True) for _ in range(7)]
    for delay, ceiling in zip(delays, [1, 2, 4, 8, 16, 30, 30], strict=True):
        assert delay is not None and 0.75 * ceiling <= delay <= ceiling
    # a camera that is away is not backed off, however many attempts failed: it is probed
    assert policy.after_attempt(connected=False, lasted_s=0.1, refused=False) is None
    assert policy.after_probe(connected=False, probes_failed=240) is None  # away two minutes, back: at once


def test_retry_policy_backs_off_a_camera_that_accepts_tcp_but_never_answers() -> None:
    from edgeagent.camera.failures import RetryPolicy

    policy = RetryPolicy()
    delays = []
    for _ in range(4):
        assert policy.after_attempt(connected=False, lasted_s=10, refused=False) is None
        delays.append(policy.after_probe(connected=False, probes_failed=0))
    assert all(d is not None for d in delays) and delays[-1] >= 0.75 * 8  # type: ignore[operator]


def test_retry_policy_reconnects_at_once_after_a_long_session_and_backs_off_short_ones() -> None:
    from edgeagent.camera.failures import RetryPolicy

    policy = RetryPolicy(short_session_s=10)
    assert policy.after_attempt(connected=True, lasted_s=600, refused=False) is None
    assert policy.after_probe(connected=True, probes_failed=0) is None  # stalled, camera still there: at once
    policy.after_attempt(connected=True, lasted_s=0.5, refused=False)  # a camera that drops every session
    assert policy.after_probe(connected=True, probes_failed=0) is not None


def test_refusals_and_absences_are_told_apart() -> None:
    from edgeagent.camera.failures import (
        WAITING_AFTER_AUTH_FAILURE,
        WAITING_AFTER_CAMERA_ERROR,
        AuthRefused,
        CameraRefused,
        camera_refused,
        waiting_after,
    )

    unauthorized = av.error.HTTPUnauthorizedError(-825242872, "401")
    assert camera_refused(unauthorized) and waiting_after(unauthorized) == WAITING_AFTER_AUTH_FAILURE
    assert camera_refused(av.error.HTTPServerError(-1482175992, "5xx"))
    assert waiting_after(CameraRefused("no video")) == WAITING_AFTER_CAMERA_ERROR
    assert waiting_after(AuthRefused("basic")) == WAITING_AFTER_AUTH_FAILURE
    for away in (ConnectionRefusedError(), TimeoutError(), OSError(113, "No route to host")):
        assert not camera_refused(away)


# -- the challenge read before the password is handed to FFmpeg ---------------------------------------


def test_challenge_parsing_and_the_password_decision() -> None:
    from edgeagent.camera.challenge import BASIC_REFUSED, parse_answer, password_may_be_sent
    from edgeagent.camera.failures import AuthRefused, CameraRefused

    basic = parse_answer(b'RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Basic realm="cam"')
    assert basic.status == 401 and basic.schemes == {"basic"}
    with pytest.raises(AuthRefused, match="refusing to send the password"):
        password_may_be_sent(basic, allow_basic=False)
    assert BASIC_REFUSED.startswith("camera offered only Basic auth over plain RTSP")
    assert password_may_be_sent(basic, allow_basic=True)
    both = parse_answer(
        b'RTSP/1.0 401 Unauthorized\r\nwww-authenticate: Basic realm="c"\r\n'
        b'WWW-Authenticate: Digest realm="c", nonce="1"'
    )
    assert password_may_be_sent(both, allow_basic=False)  # FFmpeg answers with Digest when offered
    assert not password_may_be_sent(parse_answer(b"RTSP/1.0 200 OK\r\nCSeq: 1"), allow_basic=False)
    with pytest.raises(CameraRefused, match="404"):
        password_may_be_sent(parse_answer(b"RTSP/1.0 404 Not Found"), allow_basic=False)
    with pytest.raises(CameraRefused, match="not RTSP"):
        parse_answer(b"HTTP/1.1 200 OK")
    with pytest.raises(AuthRefused):
        password_may_be_sent(parse_answer(b"RTSP/1.0 401 x\r\nWWW-Authenticate: Negotiate"), allow_basic=False)


def test_picture_size_problems() -> None:
    from edgeagent.camera.picture_size import picture_size_problem

    assert picture_size_problem(1920, 1080, (1920, 1088)) is None
    assert picture_size_problem(0, 0, None) is None  # unknown yet: nothing known to be wrong
    problem = picture_size_problem(0, 0, (16384, 16384))
    assert problem is not None and "16384x16384" in problem and "unusable" in problem
    assert picture_size_problem(9000, 600, None) is not None


# -- the TCP probe ------------------------------------------------------------------------------------


def test_probe_sees_a_listener_at_once_and_waits_through_refusals() -> None:
    import socket
    import threading
    import time

    from edgeagent.camera.reachability import wait_until_accepting
    from tests.support.net import free_port

    # A claimed port: one from port 0 is free for 1.2 s after the close, and another test process's own
    # bind to port 0 could be given it meanwhile (then this one could not listen, and the probe waited on).
    port = free_port()
    listener = socket.create_server(("127.0.0.1", port))
    assert wait_until_accepting("127.0.0.1", port, threading.Event()) == (True, 0)
    listener.close()

    def listen_later() -> None:
        time.sleep(1.2)
        holder.append(socket.create_server(("127.0.0.1", port)))

    holder: list[socket.socket] = []
    threading.Thread(target=listen_later).start()
    give_up = threading.Event()  # a listener that never came fails the test in seconds, not at its timeout
    threading.Timer(10, give_up.set).start()
    began = time.monotonic()
    accepted, failed = wait_until_accepting("127.0.0.1", port, give_up, interval_s=0.1)
    give_up.set()
    assert accepted and failed >= 5 and time.monotonic() - began < 1.2 + 0.5
    holder[0].close()


def test_probe_stops_when_woken() -> None:
    import threading

    from edgeagent.camera.reachability import wait_until_accepting
    from tests.support.net import free_port

    wake = threading.Event()
    threading.Timer(0.3, wake.set).start()
    assert wait_until_accepting("127.0.0.1", free_port(), wake, interval_s=0.1)[0] is False


def test_camera_tls_settings_are_validated() -> None:
    from pydantic import ValidationError

    from edgeagent.config import CameraSection

    pin = ":".join(["AB"] * 32)
    section = CameraSection(url="rtsps://10.0.0.1/s", tls_fingerprint_sha256=pin)
    assert section.tls_fingerprint_sha256 == pin
    with pytest.raises(ValidationError, match="need an rtsps:// url"):
        CameraSection(url="rtsp://10.0.0.1/s", tls_fingerprint_sha256=pin)
    with pytest.raises(ValidationError):
        CameraSection(url="rtsps://10.0.0.1/s", tls_fingerprint_sha256="abc")
    assert CameraSection(url="rtsp://10.0.0.1/s").allow_basic_auth is False
