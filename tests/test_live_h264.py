"""Telling B-frames from the bitstream: a camera that sends them cannot be passed through to a browser."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from edgeagent.live.h264 import first_slice_type, has_b_slice


def encode_clip(bframes: int, frames: int = 30, width: int = 320, height: int = 180) -> list[bytes]:
    """Annex B access units in decode order, from libx264 with ``bframes`` B-frames between references."""
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = Fraction(1, 25)
    encoder.framerate = Fraction(25, 1)
    encoder.options = {"preset": "superfast", "bf": str(bframes), "g": "25", "x264-params": "slices=1"}
    units = []
    for index in range(frames):
        picture = np.full((height * 3 // 2, width), 16 + (index * 7) % 200, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
        frame.pts = index
        units += [bytes(packet) for packet in encoder.encode(frame)]
    units += [bytes(packet) for packet in encoder.encode(None)]
    return units


def write_clip(path: Path, bframes: int, frames: int = 100) -> Path:
    path.write_bytes(b"".join(encode_clip(bframes, frames=frames, width=640, height=360)))
    return path


def test_slice_types_of_a_stream_with_b_frames() -> None:
    types = [first_slice_type(unit) for unit in encode_clip(bframes=2)]
    assert types[0] == 7  # I, all slices of the picture
    assert 6 in types and 5 in types  # B and P
    assert any(has_b_slice(unit) for unit in encode_clip(bframes=2))


def test_a_stream_without_b_frames_has_none() -> None:
    units = encode_clip(bframes=0)
    assert not any(has_b_slice(unit) for unit in units)
    assert set(first_slice_type(unit) for unit in units) <= {5, 7}


def test_garbage_is_not_a_b_frame() -> None:
    for data in (b"", b"\x00\x00\x01", b"\x00\x00\x01\x41", b"\x00\x00\x01\x09\xf0", bytes(range(256))):
        assert not has_b_slice(data)
