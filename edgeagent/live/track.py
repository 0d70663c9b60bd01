"""The video track of one viewer: encoded H.264 access units from the camera's feed, as aiortc sends them.

``recv()`` returns ``av.Packet`` objects, which aiortc packetises without decoding or encoding. The
track starts with the feed's current GOP (a picture at once, whatever the camera's keyframe interval),
then reads live packets from a bounded subscription; when it falls behind and the hub drops packets, it
skips to the next keyframe rather than send a broken GOP. It lives as long as the peer connection:
camera reconnects, new resolutions and a switch between passthrough and transcode happen under it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from fractions import Fraction

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from edgeagent.camera.hub import CameraHub, Subscription
from edgeagent.camera.packet import Packet
from edgeagent.live.feed import CameraFeed
from edgeagent.live.h264 import has_b_slice
from edgeagent.live.timeline import CLOCK_RATE, RtpTimeline

log = logging.getLogger(__name__)

QUEUE_PACKETS = 60  # about 2 s at 30 fps: more behind than that, and the viewer skips to a keyframe
CATCH_UP_YIELD_EVERY = 8  # let the event loop breathe while a cached GOP is being sent
TIME_BASE = Fraction(1, CLOCK_RATE)


class CameraTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, feed: CameraFeed, name: str) -> None:
        super().__init__()
        self.feed = feed
        self.name = name
        self._hub: CameraHub | None = None
        self._subscription: Subscription | None = None
        self._backlog: collections.deque[Packet] = collections.deque()
        self._seen_dropped = 0
        self._need_keyframe = True
        self._draining = False
        self._last_stream: object = None
        self._timeline = RtpTimeline()
        self._attached = False
        self.on_first_frame: Callable[[], None] | None = None
        self.packets_sent = 0
        self.bytes_sent = 0
        self.keyframes_sent = 0
        self.skipped = 0  # packets not sent while waiting for a keyframe
        self.dropped_before = 0  # drops of subscriptions this track already left
        self.first_frame_at: float | None = None
        self.caught_up_at: float | None = None  # the cached GOP is sent: from here on the picture is live
        self.catch_up_packets = 0
        self._catch_up_started: float | None = None
        self._catch_up_bytes = 0
        self.keyframe_requests = 0

    # -- lifetime ---------------------------------------------------------------------------------

    def attach(self) -> None:
        """Count this viewer on its feed (starts the shared transcoder when the camera needs one)."""
        if not self._attached:
            self._attached = True
            self.feed.attach()

    def stop(self) -> None:
        self._unsubscribe()
        if self._attached:
            self._attached = False
            self.feed.detach()
        super().stop()

    @property
    def packets_dropped(self) -> int:
        current = self._subscription.dropped if self._subscription is not None else 0
        return self.dropped_before + current + self.skipped

    def request_keyframe(self) -> None:
        """The browser asked for a keyframe (PLI/FIR)."""
        self.keyframe_requests += 1
        self.feed.request_keyframe()

    # -- reading ----------------------------------------------------------------------------------

    def _subscribe(self) -> None:
        self._unsubscribe()
        hub = self.feed.current_hub
        # No await between these two lines: the GOP and the live packets join without a gap.
        self._backlog = collections.deque(hub.current_gop())
        # Room for what arrives while the cached GOP is sent (paced at well above the camera's bitrate);
        # once that is drained, QUEUE_PACKETS is the bound again (see _next).
        self._subscription = hub.subscribe(
            "live", maxsize=QUEUE_PACKETS + len(self._backlog), from_gop=False, resync_on_drop=False
        )
        self._draining = True
        self._hub = hub
        self._catch_up_started = None
        self._catch_up_bytes = 0
        self._seen_dropped = 0
        self._need_keyframe = True
        self.feed.request_keyframe()

    def _unsubscribe(self) -> None:
        if self._subscription is not None:
            self.dropped_before += self._subscription.dropped
            self._subscription.close()
            self._subscription = None
        self._backlog.clear()

    async def _pace(self) -> None:
        """Send the cached GOP at ``catch_up_kbps``: a burst of a whole GOP could overrun a mobile uplink,
        and aiortc keeps only the last 128 RTP packets for retransmission."""
        rate = self.feed.catch_up_bps
        if not rate:
            if self.catch_up_packets % CATCH_UP_YIELD_EVERY == 0:
                await asyncio.sleep(0)
            return
        now = time.monotonic()
        if self._catch_up_started is None:
            self._catch_up_started = now
        due = self._catch_up_started + self._catch_up_bytes * 8 / rate
        await asyncio.sleep(max(0.0, due - now))

    async def _next(self) -> tuple[Packet, bool]:
        """The next packet to consider, and whether it comes from the cached GOP."""
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if self._subscription is None or self._hub is not self.feed.current_hub:
                self._subscribe()
            assert self._subscription is not None
            if self._backlog:
                await self._pace()
                if self._subscription is None or self._hub is not self.feed.current_hub or not self._backlog:
                    continue  # the feed changed while we waited
                cached = self._backlog.popleft()
                self._catch_up_bytes += len(cached.data)
                self.catch_up_packets += 1
                return cached, True
            if self.caught_up_at is None:
                self.caught_up_at = time.monotonic()
            packet = self._subscription.get_nowait() or await self._subscription.get()
            if packet is None:
                # Our subscription was closed under us (the transcoder stopped): read the feed again.
                self._unsubscribe()
                continue
            if self._subscription.dropped != self._seen_dropped:
                self._seen_dropped = self._subscription.dropped
                self._need_keyframe = True  # fell behind: the hub dropped part of this GOP
            backlog = self._subscription.qsize()
            if self._draining:
                self._draining = backlog > 1
            elif backlog > QUEUE_PACKETS and not self._need_keyframe:
                self._need_keyframe = True  # fell behind: skip to the next keyframe
            return packet, False

    async def recv(self) -> av.Packet:
        while True:
            packet, catch_up = await self._next()
            if packet.stream.codec != "h264":
                self.skipped += 1  # the feed is switching to the transcoder
                continue
            if packet.stream is not self._last_stream:
                self._need_keyframe = True  # a reconnect or a switch of feed: start at its keyframe
            if self._need_keyframe:
                if not packet.keyframe:
                    self.skipped += 1
                    continue
                self._need_keyframe = False
                self._last_stream = packet.stream
            if not packet.keyframe and self._hub is self.feed.hub and has_b_slice(packet.data):
                self.feed.report_reordering()  # B-frames: the feed switches to the shared transcoder
                self.skipped += 1
                continue
            now = time.monotonic()
            out = av.Packet(packet.data)
            out.pts = self._timeline.stamp(packet, now, catch_up)
            out.time_base = TIME_BASE
            self.packets_sent += 1
            self.bytes_sent += len(packet.data)
            if packet.keyframe:
                self.keyframes_sent += 1
                if self.first_frame_at is None:
                    self.first_frame_at = now
                    if self.on_first_frame is not None:
                        self.on_first_frame()
            return out
