"""Snapshots across a camera restart that changes codec and size, with the real simulator and RTSP source."""

from __future__ import annotations

import cv2
import numpy as np

from edgeagent.camera.hub import CameraHub
from edgeagent.camera.source import CameraSource
from edgeagent.config import CameraSection, SnapshotSection
from edgeagent.media.snapshot import Snapshotter
from tests.support.camera import Camera
from tests.support.wait import wait_until_async as until


def jpeg_size(jpeg: bytes) -> tuple[int, int]:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return image.shape[1], image.shape[0]


async def test_a_camera_back_as_h265_at_another_size_never_shows_its_h264_picture(tmp_path) -> None:
    camera = Camera(codec="h264", width=320, height=180, gop_s=1, log_path=tmp_path / "camera.log").start()
    hub = CameraHub("north")
    source = CameraSource("north", CameraSection(url=camera.url, stall_timeout_s=3), None, hub)
    snapshotter = Snapshotter("north", SnapshotSection(width=640), [], hub)
    source.start()
    try:
        await until(hub.last_keyframe, 15, "the H.264 camera's first keyframe")
        before = await snapshotter.snapshot()
        assert before is not None and (before.width, before.height) == (320, 180)
        assert snapshotter.latest is before

        camera.stop()
        await until(lambda: hub.stream is None, 10, "the source noticing the camera is gone")
        camera.codec, camera.width, camera.height = "h265", 640, 360
        camera.start()
        stream = await until(lambda: hub.stream, 15, "the camera's new stream")
        assert stream.codec == "hevc" and (stream.width, stream.height) == (640, 360)
        assert snapshotter.latest is None, "the H.264 picture was dropped with its stream"

        await until(hub.last_keyframe, 10, "the H.265 camera's first keyframe")
        after = await snapshotter.snapshot()
        assert after is not None and after is not before
        assert (after.width, after.height) == jpeg_size(after.jpeg) == (640, 360)
        assert after.keyframe_arrival > before.keyframe_arrival  # made from a keyframe of the new stream
        assert snapshotter.failures == 0
    finally:
        await source.stop()
        camera.close()
