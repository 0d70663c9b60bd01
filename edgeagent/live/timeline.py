"""One viewer's RTP clock: continuous and monotonic whatever the camera's timestamps do.

A camera's timestamps restart on every reconnect, and the shared transcoder's stream is another clock
again; a browser expects one 90 kHz clock that moves with the wall clock. Within one stream the camera's
own spacing is kept; across a change of stream the clock advances by the wall-clock time that passed.
The cached GOP sent to a new viewer keeps to the wall clock too, not to the camera's spacing: the browser
decodes it as it arrives and shows the newest picture instead of replaying the GOP in real time, seconds
behind. Stamps that agree with the arrivals matter (see ``stamp``).
"""

from __future__ import annotations

from edgeagent.camera.packet import Packet, StreamInfo

CLOCK_RATE = 90_000
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
            # Not one tick per frame: frames that arrive over 0.1-1.5 s (paced) but claim microseconds
            # between them looked late to Chromium's jitter buffer, which held the live ones behind them
            # (a 10 s GOP camera joined mid-GOP: the page decoded the GOP after 0.5-3.3 s, medians 1.4 and
            # 3.0 s, instead of 0.2-0.5 s, and once froze for 1.5 s; benchmarks/FINDINGS.md).
            ts = self._by_wall(now)
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

    def _by_wall(self, now: float) -> int:
        """The last stamp advanced by the wall-clock time since (at least one tick)."""
        assert self._last_ts is not None
        return self._last_ts + max(1, round((now - self._last_wall) * CLOCK_RATE))

    def _follow(self, packet: Packet, now: float) -> int:
        assert self._last_ts is not None
        by_wall = self._by_wall(now)
        if packet.pts is None or packet.stream is not self._stream:
            self.resyncs += 1
            return by_wall
        ts = self._origin_ts + round((packet.pts - self._origin_pts) * packet.stream.time_base * CLOCK_RATE)
        if ts <= self._last_ts or abs(ts - by_wall) > MAX_JUMP_S * CLOCK_RATE:
            self.resyncs += 1  # backwards, or a jump: keep to the wall clock
            return by_wall
        return ts
