"""Per-camera fan-out: one ingest, many consumers, none of which can slow the ingest down."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable

from edgeagent.camera.packet import Packet, StreamInfo

log = logging.getLogger(__name__)

# The GOP cache is bounded too: a camera with a 60 s GOP at 60 fps must not grow without limit.
MAX_GOP_PACKETS = 1200
RATE_WINDOW_S = 5.0


class Subscription:
    """A bounded queue of packets for one consumer. When full, the oldest packet is dropped and counted.

    With ``resync_on_drop`` the consumer never sees a broken GOP: after a drop, packets are discarded until
    the next keyframe (what a decoder or a WebRTC viewer needs). A consumer that is not ``prompt`` takes its
    packets at its own pace (a recorder, once a fragment): for it alone the source need not wake the loop
    for every packet (``CameraHub.prompt``).
    """

    def __init__(self, hub: CameraHub, name: str, maxsize: int, resync_on_drop: bool, prompt: bool = True) -> None:
        self.hub = hub
        self.name = name
        self.prompt = prompt
        self.maxsize = maxsize
        self.resync_on_drop = resync_on_drop
        self.dropped = 0
        self.delivered = 0
        self._queue: collections.deque[Packet] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._waiting_for_keyframe = False
        self.closed = False

    def push(self, packet: Packet) -> None:
        """Called by the hub on the event loop; never blocks, never raises."""
        if self.closed:
            return
        if self._waiting_for_keyframe:
            if not packet.keyframe:
                self.dropped += 1
                return
            self._waiting_for_keyframe = False
        if len(self._queue) >= self.maxsize:
            if self.resync_on_drop:
                self.dropped += len(self._queue)
                self._queue.clear()
                if not packet.keyframe:
                    self._waiting_for_keyframe = True
                    self.dropped += 1
                    return
            else:
                self._queue.popleft()
                self.dropped += 1
        self._queue.append(packet)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> Packet | None:
        """The next packet, or None once the subscription is closed."""
        while not self._queue:
            if self.closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self.delivered += 1
        return self._queue.popleft()

    def get_nowait(self) -> Packet | None:
        if not self._queue:
            return None
        self.delivered += 1
        return self._queue.popleft()

    def qsize(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._queue.clear()
        self._wake()
        self.hub._remove(self)


class CameraHub:
    """Receives every packet of one camera on the event loop and hands it to each subscription.

    It caches the current GOP (from the last keyframe, which the source makes self-contained by putting
    the parameter sets in front) so a late consumer starts with a picture at once.
    """

    def __init__(self, camera: str) -> None:
        self.camera = camera
        self.stream: StreamInfo | None = None
        self._subscriptions: list[Subscription] = []
        self._gop: list[Packet] = []
        # (arrival, media time, size) of recent packets. Rates use media time: the burst of packets
        # buffered while the demuxer probed the stream would otherwise read as a high frame rate.
        self._rate: collections.deque[tuple[float, float, int]] = collections.deque()
        self._keyframe_pts: collections.deque[float] = collections.deque(maxlen=3)
        self.packets_total = 0
        self.bytes_total = 0
        self.last_packet_at: float | None = None
        self.dropped_by_closed: dict[str, int] = {}
        self._stream_listeners: list[Callable[[StreamInfo | None], None]] = []
        # Some subscription wants each packet as soon as it arrives (a viewer, a picture worker). Read by
        # the ingest thread to choose how it hands packets over; only the loop changes it.
        self.prompt = False

    # -- ingest side ------------------------------------------------------------------------------

    def publish(self, packet: Packet) -> None:
        if packet.stream is not self.stream:
            self._set_stream(packet.stream)
        size = len(packet.data)
        arrival = packet.arrival
        self.packets_total += 1
        self.bytes_total += size
        self.last_packet_at = arrival
        media_time = packet.pts_seconds
        rate = self._rate
        if media_time is not None:
            rate.append((arrival, media_time, size))
        while rate and arrival - rate[0][0] > RATE_WINDOW_S:
            rate.popleft()
        if packet.keyframe:
            self._gop = [packet]
            if media_time is not None:
                self._keyframe_pts.append(media_time)
        elif self._gop and len(self._gop) < MAX_GOP_PACKETS:
            self._gop.append(packet)
        for subscription in tuple(self._subscriptions):
            subscription.push(packet)

    def stream_ended(self) -> None:
        """The connection is gone: the cached GOP belongs to it and must not start a new consumer."""
        self._gop = []
        self._keyframe_pts.clear()
        self._rate.clear()
        self._set_stream(None)

    def _set_stream(self, stream: StreamInfo | None) -> None:
        self.stream = stream
        if stream is not None:
            self._gop = []
            self._keyframe_pts.clear()
        for listener in tuple(self._stream_listeners):
            listener(stream)

    def on_stream_change(self, listener: Callable[[StreamInfo | None], None]) -> None:
        self._stream_listeners.append(listener)

    # -- consumer side ----------------------------------------------------------------------------

    def subscribe(
        self,
        name: str,
        maxsize: int = 256,
        from_gop: bool = True,
        resync_on_drop: bool = False,
        prompt: bool = True,
    ) -> Subscription:
        subscription = Subscription(self, name, maxsize, resync_on_drop, prompt)
        if from_gop and len(self._gop) <= maxsize:
            for packet in self._gop:
                subscription.push(packet)
        elif from_gop or resync_on_drop:
            # A GOP that does not fit would start without its keyframe: start at the next one instead.
            subscription._waiting_for_keyframe = True
        self._subscriptions.append(subscription)
        self.prompt = self.prompt or prompt
        return subscription

    def _remove(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
            self.prompt = any(other.prompt for other in self._subscriptions)
            self.dropped_by_closed[subscription.name] = (
                self.dropped_by_closed.get(subscription.name, 0) + subscription.dropped
            )

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return tuple(self._subscriptions)

    def current_gop(self) -> list[Packet]:
        return list(self._gop)

    def last_keyframe(self) -> Packet | None:
        return self._gop[0] if self._gop else None

    # -- measurements -----------------------------------------------------------------------------

    def _media_span(self) -> float:
        if len(self._rate) < 2:
            return 0.0
        return max(entry[1] for entry in self._rate) - min(entry[1] for entry in self._rate)

    def fps(self) -> float:
        span = self._media_span()
        return (len(self._rate) - 1) / span if span > 0 else 0.0

    def bitrate_kbps(self) -> float:
        span = self._media_span()
        if span <= 0:
            return 0.0
        # n packets span n - 1 frame intervals: count the bytes of n - 1 of them.
        sent = sum(entry[2] for entry in self._rate) * (len(self._rate) - 1) / len(self._rate)
        return sent * 8 / span / 1000

    def gop_seconds(self) -> float | None:
        if len(self._keyframe_pts) < 2:
            return None
        return self._keyframe_pts[-1] - self._keyframe_pts[-2]

    def drops_by_consumer(self) -> dict[str, int]:
        drops = dict(self.dropped_by_closed)
        for subscription in self._subscriptions:
            drops[subscription.name] = drops.get(subscription.name, 0) + subscription.dropped
        return drops
