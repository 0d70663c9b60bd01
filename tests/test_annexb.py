"""The Annex B module: NAL unit walking, parameter sets, keyframes, slice types and the SPS's picture size."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from edgeagent.camera.annexb import (
    BitReader,
    declared_picture_size,
    first_slice_type,
    has_b_slice,
    is_keyframe,
    nal_types,
    rbsp,
    with_parameter_sets,
)

SPS_PPS = b"\x00\x00\x00\x01\x67\x42\xc0\x1e" + b"\x00\x00\x00\x01\x68\xce\x3c\x80"
IDR = b"\x00\x00\x00\x01\x65\x88\x84\x00"
GARBAGE = (b"", b"\x00", b"\x00\x00\x01", b"\x00\x00\x01\x41", b"\x00\x00\x01\x09\xf0", bytes(range(256)))


def encode(codec: str, width: int, height: int, frames: int = 3, **options: str) -> tuple[list[bytes], bytes]:
    """Annex B access units and extradata from a real encoder (libx264 or libx265)."""
    encoder = av.CodecContext.create(codec, "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = Fraction(1, 25)
    encoder.options = options
    units = []
    for index in range(frames):
        frame = av.VideoFrame.from_ndarray(
            np.full((height * 3 // 2, width), 40 + index * 9, dtype=np.uint8), format="yuv420p"
        )
        frame.pts = index
        units += [bytes(packet) for packet in encoder.encode(frame)]
    units += [bytes(packet) for packet in encoder.encode(None)]
    return units, bytes(encoder.extradata or b"")


def test_nal_types_of_both_codecs() -> None:
    assert nal_types(SPS_PPS + IDR, "h264") == [7, 8, 5]
    assert nal_types(b"\x00\x00\x01\x40\x01\x00\x00\x01\x26\x01", "hevc") == [32, 19]
    assert nal_types(SPS_PPS * 10, "h264", limit=3) == [7, 8, 7]


def test_keyframes_of_both_codecs() -> None:
    assert is_keyframe(SPS_PPS + IDR, "h264")
    assert not is_keyframe(b"\x00\x00\x01\x41\x9a", "h264")
    assert is_keyframe(b"\x00\x00\x01\x2a\x01", "hevc")  # CRA (21)
    assert not is_keyframe(b"\x00\x00\x01\x02\x01", "hevc")  # TRAIL_R (1)


def test_parameter_sets_are_put_in_front_of_a_bare_keyframe_only() -> None:
    assert with_parameter_sets(IDR, "h264", SPS_PPS) == SPS_PPS + IDR
    assert with_parameter_sets(SPS_PPS + IDR, "h264", SPS_PPS) == SPS_PPS + IDR
    assert with_parameter_sets(IDR, "h264", b"\x01\x42\xc0\x1e") == IDR  # avcC extradata: not Annex B
    assert with_parameter_sets(IDR, "h264", None) == IDR
    assert with_parameter_sets(IDR, "vp8", SPS_PPS) == IDR


def test_emulation_prevention_is_removed_and_the_next_unit_is_not_read() -> None:
    assert rbsp(b"\x00\x00\x03\x01\xff", 0, 8) == b"\x00\x00\x01\xff"
    assert rbsp(b"\xaa\xbb\x00\x00\x01\x67", 0, 8) == b"\xaa\xbb\x00\x00"


def test_bit_reader_exp_golomb() -> None:
    reader = BitReader(bytes([0b10100110, 0b01000000]))  # ue 0, 1, 2, se(3) = 2
    assert [reader.ue(), reader.ue(), reader.ue(), reader.se()] == [0, 1, 2, 2]
    with pytest.raises(EOFError):
        BitReader(b"\x00\x00\x00\x00\x00").ue()


@pytest.mark.parametrize("garbage", GARBAGE)
def test_garbage_never_raises(garbage: bytes) -> None:
    assert not has_b_slice(garbage)
    for codec in ("h264", "hevc"):
        size = declared_picture_size(garbage, codec)
        assert size is None or all(isinstance(side, int) for side in size)
    is_keyframe(garbage, "hevc")
    with_parameter_sets(garbage, "h264", SPS_PPS)


def test_b_slices_are_found_in_a_real_stream() -> None:
    units, _ = encode("libx264", 320, 180, frames=12, preset="superfast", bf="2", g="25", **{"x264-params": "slices=1"})
    assert first_slice_type(units[0]) == 7
    assert any(has_b_slice(unit) for unit in units)


@pytest.mark.parametrize(
    ("codec", "options"),
    [
        ("libx264", {"preset": "ultrafast", "profile": "baseline"}),
        ("libx264", {"preset": "superfast", "profile": "high"}),
        ("libx264", {"preset": "superfast", "profile": "high", "x264-params": "cqm=jvt"}),  # scaling lists
        ("libx265", {"preset": "ultrafast", "x265-params": "log-level=error"}),
    ],
)
def test_declared_picture_size_of_real_encoders(codec: str, options: dict[str, str]) -> None:
    units, extradata = encode(codec, 320, 192, frames=1, **options)
    name = "h264" if codec == "libx264" else "hevc"
    assert declared_picture_size(units[0], name) == (320, 192)
    if extradata:
        assert declared_picture_size(extradata, name) == (320, 192)


@pytest.mark.parametrize(("width", "height"), [(320, 192), (1920, 1088), (16384, 16384), (65536, 16)])
def test_declared_picture_size_of_a_crafted_sps(width: int, height: int) -> None:
    from tests.support.h264_bits import PPS, baseline_sps

    unit = b"\x00\x00\x00\x01" + baseline_sps(width, height) + b"\x00\x00\x00\x01" + PPS
    assert declared_picture_size(unit, "h264") == (width, height)
