"""Pure logic of the RTSP source: backoff, parameter sets, error descriptions, log redaction."""

from __future__ import annotations

import random

import av.error

from edgeagent.camera.annexb import with_parameter_sets
from edgeagent.camera.source import backoff_delay, describe_error
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
