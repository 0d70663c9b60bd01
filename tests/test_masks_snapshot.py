"""Masks and snapshot rendering on real decoded pictures."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import av
import cv2
import numpy as np

from edgeagent.camera.hub import CameraHub
from edgeagent.camera.packet import Packet, StreamInfo
from edgeagent.config import PrivacyMask, SnapshotSection
from edgeagent.media.masks import apply_masks_yuv420, mask_pixels
from edgeagent.media.scaling import scaled_size
from edgeagent.media.snapshot import Snapshotter, decode_keyframe, render_jpeg


def mask(x: float, y: float, w: float, h: float) -> PrivacyMask:
    return PrivacyMask.model_validate([x, y, w, h])


def test_mask_pixels_round_outwards() -> None:
    assert mask_pixels(mask(0.1, 0.1, 0.2, 0.2), 101, 51) == (10, 5, 31, 16)
    assert mask_pixels(mask(0.0, 0.0, 1.0, 1.0), 640, 360) == (0, 0, 640, 360)


def test_scaled_size_keeps_aspect_never_upscales_and_stays_even() -> None:
    assert scaled_size(1920, 1080, 640) == (640, 360)
    assert scaled_size(640, 360, 1920) == (640, 360)
    assert scaled_size(1920, 1080, 641) == (640, 360)


def test_scaled_size_rounds_the_height_to_the_nearest_even_from_the_width_used() -> None:
    # The live transcode uses the same function: a snapshot and the live picture have the same size.
    assert scaled_size(1280, 720, 853) == (852, 480)  # 479.25 -> 480, not floored to 478
    assert scaled_size(1920, 1080, 854) == (854, 480)  # 480.375 -> 480
    assert scaled_size(641, 361, 1920) == (640, 360)  # odd input: even output
    assert scaled_size(3, 1, 640) == (2, 2)  # never below 2x2


def colour_frame(width: int = 320, height: int = 180) -> av.VideoFrame:
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :] = (40, 180, 220)  # BGR: an orange-yellow, far from black, grey and green
    return av.VideoFrame.from_ndarray(image, format="bgr24")


def encode_keyframe(frame: av.VideoFrame) -> tuple[bytes, StreamInfo]:
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = frame.width, frame.height, "yuv420p"
    encoder.time_base = Fraction(1, 25)
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency"}
    yuv = frame.reformat(format="yuv420p")
    yuv.pts = 0
    data = b"".join(bytes(p) for p in encoder.encode(yuv)) + b"".join(bytes(p) for p in encoder.encode(None))
    return data, StreamInfo("h264", frame.width, frame.height, Fraction(1, 90000), None, 1)


def test_keyframe_decodes_at_once_and_renders_a_masked_jpeg() -> None:
    data, stream = encode_keyframe(colour_frame())
    picture = decode_keyframe(Packet(data, 0, 0, True, stream, 0.0))
    assert (picture.width, picture.height) == (320, 180)
    jpeg = render_jpeg(picture, 160, 85, [mask(0.0, 0.0, 0.25, 0.5)])
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (90, 160, 3)
    assert image[5:40, 5:35].max() < 30  # inside the mask: black
    outside = image[50:85, 60:150].reshape(-1, 3).mean(axis=0)
    assert abs(outside[2] - 220) < 25 and abs(outside[1] - 180) < 25  # outside: the picture's colour


def test_yuv_masks_blacken_only_their_rectangle() -> None:
    frame = colour_frame(64, 32).reformat(format="yuv420p")
    planes = [np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width].copy()
              for plane in frame.planes]
    before = [plane.copy() for plane in planes]
    apply_masks_yuv420(planes, [mask(0.25, 0.25, 0.25, 0.5)])
    assert (planes[0][8:24, 16:32] == 16).all()
    assert (planes[1][4:12, 8:16] == 128).all()
    untouched = np.ones_like(planes[0], bool)
    untouched[8:24, 16:32] = False
    assert (planes[0][untouched] == before[0][untouched]).all()


def test_snapshot_section_defaults() -> None:
    assert SnapshotSection() == SnapshotSection(interval_s=10, width=640, quality=80)


async def test_a_snapshot_made_while_the_camera_came_back_as_another_stream_is_not_kept() -> None:
    data, stream = encode_keyframe(colour_frame())
    hub = CameraHub("north")
    hub.publish(Packet(data, 0, 0, True, stream, time.monotonic()))
    gate = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as executor:
        executor.submit(gate.wait, 10)  # the snapshot's decode waits behind this
        snapshotter = Snapshotter("north", SnapshotSection(), [], hub, executor)
        pending = asyncio.ensure_future(snapshotter.snapshot())
        await asyncio.sleep(0)  # the snapshot took its keyframe and waits for the executor
        hevc = StreamInfo("hevc", 1920, 1080, Fraction(1, 90000), None, 2)
        hub.publish(Packet(b"\x00\x00\x01\x26\x01", 0, 0, True, hevc, time.monotonic()))
        gate.set()
        assert await pending is None
    assert snapshotter.latest is None and snapshotter.failures == 0
