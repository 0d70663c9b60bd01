"""One viewer's RTP clock: continuous and monotonic whatever the camera's timestamps do.

A camera's timestamps restart on every reconnect, and the shared transcoder's stream is another clock
again; a browser expects one 90 kHz clock that moves with the wall clock. Within one stream the camera's
own spacing is kept; across a change of stream the clock advances by the wall-clock time that passed.
The cached GOP sent to a new viewer is stamped with the time it is sent, not with the camera's spacing: the
browser decodes it as it arrives and shows the newest picture instead of replaying the GOP in real time,
seconds behind. Stamps that keep to the arrival times matter: with one tick per frame, frames that arrive
over 0.1 s but claim a few microseconds between them, Chromium's jitter buffer took them for late frames and
held the live ones behind them, up to 1.5 s (measured: see ``stamp``).
"""

from __future__ import annotations

from edgeagent.camera.packet import Packet, StreamInfo

CLOCK_RATE = 90_000
CATCH_UP_STEP = 1  # the least ticks between two frames of the cached GOP (sent in one burst when unpaced)
MAX_JUMP_S = 5.0  # a timestamp further than this from the wall clock's advance is a jump: resync


class RtpTimeline:
    def __init__(self) -> None:
        self._stream: StreamInfo | None = None
        self._origin_pts = 0  # camera pts that maps to _origin_ts
        self._origin_ts = 0
        self._last_ts: int | None = None
        self._last_wall = 0.0
        self.resyncs = 0

    def stamp(self, packet: Packet, now: float, catch_up: bool = False) -> int:
        """The RTP time (90 kHz, not yet wrapped) of ``packet``, sent at monotonic time ``now``."""
        if self._last_ts is None:
            ts = 0
        elif catch_up:
            # Headless Chromium, second viewer of a 10 s GOP camera 2 s into the GOP, 12 runs each: stamped
            # by the wall clock, the GOP was decoded 0.19-0.45 s after the offer with 1.2-1.3 s of jitter-
            # buffer delay summed over its frames; stamped one tick apart, 0.19-1.7 s with 2.1-34 s, and
            # one run in 15 froze for 1.5 s before releasing 42 frames at once.
            ts = self._last_ts + max(CATCH_UP_STEP, round((now - self._last_wall) * CLOCK_RATE))
        else:
            ts = self._follow(packet, now)
        if packet.pts is not None:
            self._stream = packet.stream
            self._origin_pts = packet.pts
            self._origin_ts = ts
        else:
            self._stream = None
        self._last_ts = ts
        self._last_wall = now
        return ts

    def _follow(self, packet: Packet, now: float) -> int:
        assert self._last_ts is not None
        by_wall = self._last_ts + max(1, round((now - self._last_wall) * CLOCK_RATE))
        if packet.pts is None or packet.stream is not self._stream:
            self.resyncs += 1
            return by_wall
        ts = self._origin_ts + round((packet.pts - self._origin_pts) * packet.stream.time_base * CLOCK_RATE)
        if ts <= self._last_ts or abs(ts - by_wall) > MAX_JUMP_S * CLOCK_RATE:
            self.resyncs += 1  # backwards, or a jump: keep to the wall clock
            return by_wall
        return ts
