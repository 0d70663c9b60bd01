"""The shared live transcoder of one camera: decode once, mask, encode once, fan out to every viewer.

Used for what a browser cannot take as the camera sends it (H.265) and for cameras with privacy masks,
whose live picture must be masked like their snapshots. All codec work runs in one worker thread per
camera; the event loop only moves packets. The encoded stream goes into a ``CameraHub`` of its own, so
viewers of a transcoded camera are fed exactly like viewers of a passthrough one (bounded queues, the
current GOP for a fast start), and every viewer shares the one encoder.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction

import av
import av.error
import numpy as np
from av.video.frame import PictureType

from edgeagent.camera.hub import CameraHub
from edgeagent.camera.packet import Packet, StreamInfo
from edgeagent.config import PrivacyMask
from edgeagent.media.masks import apply_masks_yuv420
from edgeagent.media.scaling import scaled_size

log = logging.getLogger(__name__)

CLOCK = Fraction(1, 90_000)
INPUT_QUEUE_PACKETS = 120
KEYINT_S = 2.0  # periodic keyframes on top of the ones viewers ask for
MIN_FORCED_KEYFRAME_INTERVAL_S = 0.5  # one lossy viewer must not flood everybody with keyframes
CATCH_UP_AGE_S = 0.3  # frames older than this are decoded but not encoded while catching up


@dataclass(frozen=True, slots=True)
class TranscodeSettings:
    width: int  # the output is at most this wide, never upscaled
    bitrate_kbps: int
    masks: tuple[PrivacyMask, ...] = ()


def plane_views(frame: av.VideoFrame) -> list[np.ndarray]:
    """Writable numpy views of the Y, U and V planes of a yuv420p frame (no copy)."""
    views = []
    for plane in frame.planes:
        rows = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(plane.height, plane.line_size)
        views.append(rows[:, : plane.width])
    return views


class TranscodePipeline:
    """Decoder, scaler, masks and encoder; used from the worker thread only."""

    def __init__(self, settings: TranscodeSettings) -> None:
        self.settings = settings
        self._input: StreamInfo | None = None
        self._decoder: av.VideoCodecContext | None = None
        self._need_keyframe = True
        self._encoder: av.VideoCodecContext | None = None
        self._output: StreamInfo | None = None
        self._generation = 0
        self._last_pts = -1
        self._last_forced = -1e9
        self.frames_decoded = 0
        self.frames_encoded = 0
        self.keyframes_forced = 0
        self.encoders_opened = 0
        self.decode_errors = 0

    # -- decoding ---------------------------------------------------------------------------------

    def _open_decoder(self, stream: StreamInfo) -> None:
        self._input = stream
        decoder = av.CodecContext.create(stream.codec, "r")
        assert isinstance(decoder, av.VideoCodecContext)
        decoder.thread_count = 1  # no frame delay, and the least CPU per camera (see the field notes)
        self._decoder = decoder
        self._need_keyframe = True
        self._close_encoder()  # a new stream may have a new size: the next frame opens a new encoder

    def _decode(self, packet: Packet) -> list[av.VideoFrame]:
        if packet.stream is not self._input:
            self._open_decoder(packet.stream)
        if self._need_keyframe:
            if not packet.keyframe:
                return []
            self._need_keyframe = False
        assert self._decoder is not None
        av_packet = av.Packet(packet.data)
        av_packet.pts = packet.pts
        av_packet.dts = packet.dts
        av_packet.time_base = packet.stream.time_base
        try:
            frames = self._decoder.decode(av_packet)
        except av.error.FFmpegError as exc:
            self.decode_errors += 1
            self._need_keyframe = True
            log.debug("live transcode: decode error %s, waiting for a keyframe", exc)
            return []
        self.frames_decoded += len(frames)
        return frames

    # -- encoding ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """Start again from the next keyframe with a fresh decoder and encoder (after a failure)."""
        self._input = None
        self._decoder = None
        self._close_encoder()

    def _open_encoder(self, width: int, height: int, fps: int) -> None:
        bitrate = self.settings.bitrate_kbps
        encoder = av.CodecContext.create("libx264", "w")
        assert isinstance(encoder, av.VideoCodecContext)
        encoder.width = width
        encoder.height = height
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = CLOCK
        encoder.framerate = Fraction(fps, 1)  # x264's rate control spreads the bitrate over this
        encoder.bit_rate = bitrate * 1000
        encoder.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": "baseline",
            "threads": "1",
            "forced-idr": "1",
            # Parameter sets before every keyframe: a viewer may start at any of them.
            "x264-params": (
                f"keyint={round(fps * KEYINT_S)}:min-keyint=1:scenecut=0:repeat-headers=1:"
                f"vbv-maxrate={bitrate}:vbv-bufsize={bitrate}"
            ),
        }
        encoder.open()
        self._encoder = encoder
        self._generation += 1
        self._output = StreamInfo(
            codec="h264", width=width, height=height, time_base=CLOCK, extradata=None,
            generation=self._generation,
        )
        self._last_pts = -1
        self.encoders_opened += 1
        log.info("live transcode: encoder opened at %dx%d %d fps, %d kbit/s", width, height, fps, bitrate)

    def _close_encoder(self) -> None:
        self._encoder = None
        self._output = None

    def _encode(self, frame: av.VideoFrame, input_packet: Packet, force_keyframe: bool, fps: int) -> list[Packet]:
        width, height = scaled_size(frame.width, frame.height, self.settings.width)
        if self._encoder is None or (self._encoder.width, self._encoder.height) != (width, height):
            self._open_encoder(width, height, fps)
        assert self._encoder is not None and self._output is not None
        if (frame.width, frame.height) != (width, height) or frame.format.name != "yuv420p":
            picture = frame.reformat(width=width, height=height, format="yuv420p", threads=1)
        else:
            picture = frame
            if self.settings.masks:
                picture.make_writable()  # the decoder still references this buffer
        if self.settings.masks:
            apply_masks_yuv420(plane_views(picture), self.settings.masks)
        if frame.pts is not None and frame.time_base is not None:
            pts = round(frame.pts * frame.time_base / CLOCK)
        else:
            pts = round(input_packet.arrival / CLOCK)
        picture.pts = max(pts, self._last_pts + 1)
        picture.time_base = CLOCK
        self._last_pts = picture.pts
        picture.pict_type = PictureType.I if force_keyframe else PictureType.NONE
        now = time.monotonic()
        packets = []
        for encoded in self._encoder.encode(picture):
            packets.append(
                Packet(
                    data=bytes(encoded),
                    pts=encoded.pts,
                    dts=encoded.dts,
                    keyframe=encoded.is_keyframe,
                    stream=self._output,
                    arrival=now,
                )
            )
        self.frames_encoded += 1
        return packets

    # -- one batch --------------------------------------------------------------------------------

    def process(
        self, packets: Sequence[Packet], gap: bool, keyframe_wanted: bool, fps: int = 25
    ) -> tuple[list[Packet], bool]:
        """Decode every packet, encode the frames that are still fresh (always the newest one).

        Returns the encoded packets and whether a keyframe was forced.
        """
        if gap:
            self._need_keyframe = True
        decoded: list[tuple[av.VideoFrame, Packet]] = []
        for packet in packets:
            decoded.extend((frame, packet) for frame in self._decode(packet))
        now = time.monotonic()
        force = keyframe_wanted and now - self._last_forced >= MIN_FORCED_KEYFRAME_INTERVAL_S
        forced = False
        out: list[Packet] = []
        for index, (frame, input_packet) in enumerate(decoded):
            newest = index == len(decoded) - 1
            if not newest and now - input_packet.arrival > CATCH_UP_AGE_S:
                continue  # catching up (a new viewer's GOP, or the thread fell behind): decode only
            out.extend(self._encode(frame, input_packet, force and not forced, fps))
            if force and not forced:
                forced = True
                self._last_forced = now
                self.keyframes_forced += 1
        return out, forced


class SharedTranscoder:
    """One camera's live transcode, running while at least one viewer needs it."""

    def __init__(self, camera: str, hub: CameraHub, settings: TranscodeSettings) -> None:
        self.camera = camera
        self.hub = hub
        self.settings = settings
        self.output = CameraHub(f"{camera}:live")
        self.pipeline = TranscodePipeline(settings)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"live-transcode-{camera}")
        self._task: asyncio.Task[None] | None = None
        self._keyframe_wanted = False
        self.started_at: float | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None:
            self.started_at = time.monotonic()
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"live-transcode-{self.camera}"
            )
            log.info("camera %s: live transcode started", self.camera)

    def request_keyframe(self) -> None:
        """A viewer joined or lost a picture: the next encoded frame is a keyframe (rate-limited)."""
        self._keyframe_wanted = True

    async def stop(self) -> None:
        for subscription in self.output.subscriptions:
            subscription.close()  # viewers go back to their feed and find out what to read now
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)
        log.info("camera %s: live transcode stopped", self.camera)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        # The current GOP first (no await in between, so nothing is missed): a picture at once.
        backlog = collections.deque(self.hub.current_gop())
        subscription = self.hub.subscribe(
            f"live-transcode-{self.camera}", maxsize=INPUT_QUEUE_PACKETS, from_gop=False, resync_on_drop=False
        )
        seen_dropped = 0
        try:
            while True:
                batch = list(backlog)
                backlog.clear()
                if not batch:
                    first = await subscription.get()
                    if first is None:
                        return
                    batch.append(first)
                while (packet := subscription.get_nowait()) is not None:
                    batch.append(packet)
                gap = subscription.dropped != seen_dropped
                seen_dropped = subscription.dropped
                wanted = self._keyframe_wanted
                fps = max(1, min(120, round(self.hub.fps()) or 25))
                try:
                    encoded, forced = await loop.run_in_executor(
                        self._executor, self.pipeline.process, batch, gap, wanted, fps
                    )
                except Exception:
                    log.exception("camera %s: live transcode failed on a batch; resyncing", self.camera)
                    self.pipeline.reset()
                    continue
                if forced:
                    self._keyframe_wanted = False
                for packet in encoded:
                    self.output.publish(packet)
        finally:
            subscription.close()

    def stats(self) -> dict[str, object]:
        pipeline = self.pipeline
        return {
            "running": self.running,
            "frames_decoded": pipeline.frames_decoded,
            "frames_encoded": pipeline.frames_encoded,
            "keyframes_forced": pipeline.keyframes_forced,
            "encoders_opened": pipeline.encoders_opened,
            "decode_errors": pipeline.decode_errors,
        }
