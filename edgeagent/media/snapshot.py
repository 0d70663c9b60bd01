"""Snapshots: decode one keyframe (never the whole stream), scale, mask, encode JPEG."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime

import av
import av.error
import cv2

from edgeagent.camera.hub import CameraHub
from edgeagent.camera.packet import Packet, StreamInfo
from edgeagent.config import PrivacyMask, SnapshotSection
from edgeagent.media.masks import apply_masks_bgr
from edgeagent.media.picture import PictureWatch, luma_plane
from edgeagent.media.scaling import scaled_size

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Snapshot:
    jpeg: bytes
    width: int
    height: int
    taken_at: float  # time.time() when the keyframe arrived
    keyframe_arrival: float  # time.monotonic() of the keyframe, to tell whether a newer one exists


def decode_keyframe(packet: Packet) -> av.VideoFrame:
    """The picture of one self-contained keyframe (the source puts the parameter sets in front).

    A fresh decoder each time, drained at once: a decoder kept between snapshots holds its full-size picture
    buffers (about 3 MB a 1080p camera) for nothing, and a decoder fed keyframes only would otherwise hand
    the picture out one GOP late. Making one costs about 0.3 ms.
    """
    stream = packet.stream
    context = av.CodecContext.create(stream.codec, "r")
    assert isinstance(context, av.VideoCodecContext)
    context.thread_count = 1  # one picture at a time: threads only add latency here
    if stream.extradata:
        context.extradata = stream.extradata
    frames = list(context.decode(av.Packet(packet.data)))
    frames += context.decode(None)
    if not frames:
        raise ValueError("the keyframe did not decode to a picture")
    return frames[-1]


def render_jpeg(frame: av.VideoFrame, width: int, quality: int, masks: Sequence[PrivacyMask]) -> bytes:
    """Scale, burn in the masks, encode. The scaled picture is a new buffer, so masking it never touches
    the decoder's reference pictures."""
    out_width, out_height = scaled_size(frame.width, frame.height, width)
    image = frame.reformat(out_width, out_height, "bgr24", threads=1).to_ndarray()
    apply_masks_bgr(image, masks)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return encoded.tobytes()


def picture_format(stream: StreamInfo) -> tuple[str, int, int]:
    return stream.codec, stream.width, stream.height


class Snapshotter:
    """The latest snapshot of one camera, made from the hub's latest keyframe when someone asks.

    The snapshot belongs to the stream it was made from: when the camera comes back with another codec or
    size (a firmware update, H.264 -> H.265 after a restart), it is dropped at once, so nothing can
    show the old picture as the camera's, also while the new stream's first keyframe fails to decode.
    """

    def __init__(
        self,
        camera: str,
        section: SnapshotSection,
        masks: Sequence[PrivacyMask],
        hub: CameraHub,
        executor: Executor | None = None,
    ) -> None:
        self.camera = camera
        self.section = section
        self.masks = tuple(masks)
        self.hub = hub
        self.executor = executor
        self.latest: Snapshot | None = None
        self._latest_format: tuple[str, int, int] | None = None
        self.made = 0
        self.failures = 0
        self.last_error: str | None = None
        self.picture = PictureWatch()  # picture health, checked on every keyframe decoded here
        self._lock = asyncio.Lock()
        hub.on_stream_change(self._on_stream_change)

    def _on_stream_change(self, stream: StreamInfo | None) -> None:
        if stream is not None and picture_format(stream) != self._latest_format:
            self.latest, self._latest_format = None, None

    def _make(self, keyframe: Packet) -> Snapshot:
        frame = decode_keyframe(keyframe)
        jpeg = render_jpeg(frame, self.section.width, self.section.quality, self.masks)
        out_width, out_height = scaled_size(frame.width, frame.height, self.section.width)
        taken_at = time.time() - (time.monotonic() - keyframe.arrival)
        self.picture.observe(luma_plane(frame), datetime.fromtimestamp(taken_at, UTC))
        return Snapshot(jpeg, out_width, out_height, taken_at, keyframe.arrival)

    async def snapshot(self) -> Snapshot | None:
        """A snapshot of the newest keyframe; the cached one when no newer keyframe arrived since.

        None when the camera has not sent a keyframe on its current connection.
        """
        async with self._lock:
            keyframe = self.hub.last_keyframe()
            if keyframe is None:
                return None
            if self.latest is not None and self.latest.keyframe_arrival == keyframe.arrival:
                return self.latest
            loop = asyncio.get_running_loop()
            try:
                snapshot = await loop.run_in_executor(self.executor, self._make, keyframe)
            except (av.error.FFmpegError, ValueError) as exc:
                self.failures += 1
                self.last_error = f"snapshot failed: {exc}"
                log.warning("camera %s: %s", self.camera, self.last_error)
                return None
            self.made += 1
            made_from = picture_format(keyframe.stream)
            if self.hub.stream is not None and picture_format(self.hub.stream) != made_from:
                return None  # the camera came back as another stream while this was made
            self.latest, self._latest_format = snapshot, made_from
            return snapshot
