"""A WebRTC viewer in Python (aiortc): offers to receive video, decodes it, and counts what it got.

Used where a browser is not the point: LiveService tests in-process, and MQTT signaling, where an operator's
tool reaches the cabinet through the broker alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from edgeagent.live.ice import offered_host_addresses
from tests.support.browser import summarise_rgb


class FrameReader:
    """Decodes the frames of a peer connection's incoming track and counts them (every Python viewer's half)."""

    def __init__(self, pc: RTCPeerConnection) -> None:
        self.pc = pc
        self.frames = 0
        self.first_frame_at: float | None = None
        self.last_frame: Any = None
        self.sizes: list[tuple[int, int]] = []
        self._reader: asyncio.Task[None] | None = None
        self._frame_event = asyncio.Event()
        self.pc.on("track", self._on_track)

    def _on_track(self, track: Any) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._read(track))

    async def _read(self, track: Any) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.frames += 1
                if self.first_frame_at is None:
                    self.first_frame_at = time.monotonic()
                self.last_frame = frame
                size = (frame.width, frame.height)
                if not self.sizes or self.sizes[-1] != size:
                    self.sizes.append(size)
                self._frame_event.set()

    async def wait_frames(self, count: int, within_s: float) -> int:
        """Wait until ``count`` frames in total were decoded; AssertionError after ``within_s``."""
        deadline = time.monotonic() + within_s
        while self.frames < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.frames} frames decoded, {count} expected within {within_s:g} s")
            self._frame_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._frame_event.wait(), remaining)
        return self.frames

    async def close_reader(self) -> None:
        """Close the peer connection and stop reading."""
        await self.pc.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


class PythonViewer(FrameReader):
    def __init__(self, codecs: tuple[str, ...] = ("video/H264",), loopback: bool = True) -> None:
        # aioice leaves loopback out of its host candidates
        self.host_addresses = ["127.0.0.1"] if loopback else []
        super().__init__(RTCPeerConnection(RTCConfiguration(iceServers=[])))
        transceiver = self.pc.addTransceiver("video", direction="recvonly")
        wanted = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in codecs]
        transceiver.setCodecPreferences(wanted)

    async def offer(self) -> str:
        with offered_host_addresses(self.host_addresses):
            await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    def picture(self) -> dict[str, Any]:
        assert self.last_frame is not None, "no frame decoded yet"
        return summarise_rgb(self.last_frame.to_ndarray(format="rgb24"))

    async def close(self) -> None:
        await self.close_reader()
