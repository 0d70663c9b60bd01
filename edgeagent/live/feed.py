"""What one camera's viewers are fed from: the camera's own H.264, or the camera's shared transcode.

The choice follows the camera: masks (or ``live.passthrough: false``) always transcode, an H.265 stream
transcodes, H.264 passes through. A camera that comes back from a reboot with another codec switches its
viewers over on the same peer connections; the tracks notice that ``current_hub`` changed and resubscribe.
"""

from __future__ import annotations

import asyncio
import logging

from edgeagent.camera.hub import CameraHub
from edgeagent.camera.packet import StreamInfo
from edgeagent.config import CameraSection, WebRtcSection
from edgeagent.live.transcode import SharedTranscoder, TranscodeSettings

log = logging.getLogger(__name__)


class CameraFeed:
    def __init__(self, camera: str, section: CameraSection, hub: CameraHub, webrtc: WebRtcSection) -> None:
        self.camera = camera
        self.section = section
        self.hub = hub
        self.settings = TranscodeSettings(
            width=webrtc.transcode_width,
            bitrate_kbps=webrtc.transcode_bitrate_kbps,
            masks=tuple(section.privacy_masks),
        )
        self.catch_up_bps = webrtc.catch_up_kbps * 1000  # 0: unpaced
        self.viewers = 0
        self.transcoder: SharedTranscoder | None = None
        self.transcoders_started = 0
        self.keyframe_requests = 0
        self.reordered = False  # the camera sends B-frames: browsers cannot play them as they come
        self._stopping: set[asyncio.Task[None]] = set()
        hub.on_stream_change(self._on_stream_change)

    @property
    def current_hub(self) -> CameraHub:
        """The hub viewers read right now: the camera's, or the transcoder's output."""
        return self.transcoder.output if self.transcoder is not None else self.hub

    @property
    def transcoding(self) -> bool:
        return self.transcoder is not None

    def wants_transcode(self, stream: StreamInfo | None = None) -> bool:
        if self.section.privacy_masks or not self.section.live.passthrough or self.reordered:
            return True
        stream = stream or self.hub.stream
        return stream is not None and stream.codec != "h264"

    def report_reordering(self) -> None:
        """A viewer's track found B-slices. WebRTC receivers expect frames in presentation order, so this
        camera's viewers move to the shared transcode (for good: a camera's encoder settings rarely
        change)."""
        if not self.reordered:
            self.reordered = True
            log.warning("camera %s sends B-frames; its live view is transcoded from now on", self.camera)
            if self.viewers:
                self._apply(True)

    # -- viewers ----------------------------------------------------------------------------------

    def attach(self) -> None:
        self.viewers += 1
        self._apply(self.wants_transcode())

    def detach(self) -> None:
        self.viewers = max(0, self.viewers - 1)
        if self.viewers == 0:
            self._apply(False)

    def request_keyframe(self) -> None:
        """A viewer starts or lost its picture. Passthrough cannot make the camera send one."""
        self.keyframe_requests += 1
        if self.transcoder is not None:
            self.transcoder.request_keyframe()

    # -- mode -------------------------------------------------------------------------------------

    def _on_stream_change(self, stream: StreamInfo | None) -> None:
        if stream is not None and self.viewers:
            self._apply(self.wants_transcode(stream))

    def _apply(self, transcode: bool) -> None:
        if transcode and self.transcoder is None:
            self.transcoder = SharedTranscoder(self.camera, self.hub, self.settings)
            self.transcoder.start()
            self.transcoders_started += 1
        elif not transcode and self.transcoder is not None:
            transcoder, self.transcoder = self.transcoder, None
            task = asyncio.get_running_loop().create_task(transcoder.stop())
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    async def close(self) -> None:
        self._apply(False)
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)
