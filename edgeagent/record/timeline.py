"""The wall-clock time of a camera's frames: its own clock, anchored to ours once per connection.

The MP4 muxer rebases every file to zero, so the start of each segment in UTC is kept here: consecutive
segments of one connection join exactly (the next starts where the last ended, in the camera's clock);
when the two clocks drift apart by more than ``MAX_DRIFT_S`` the anchor moves to ours. A camera's
timeline never runs backwards: no segment starts before the last one ended.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from edgeagent.camera.packet import Packet

log = logging.getLogger(__name__)

MAX_DRIFT_S = 1.0


def arrival_wall_clock(packet: Packet) -> datetime:
    """The UTC time a packet arrived (its ``arrival`` is monotonic)."""
    return datetime.now(UTC) - timedelta(seconds=time.monotonic() - packet.arrival)


class Timeline:
    def __init__(self, camera: str, last_end: datetime | None) -> None:
        self.camera = camera
        self.last_end = last_end  # end of the last segment recorded
        self._anchor: tuple[int, int, datetime] | None = None  # (generation, pts, wall clock of that pts)

    def start_of(self, packet: Packet, previous_end: datetime | None = None) -> datetime:
        """Wall-clock time of the keyframe that starts a segment; ``previous_end``: the segment before it in
        the same connection, ended by this keyframe."""
        arrived = arrival_wall_clock(packet)
        pts = packet.pts if packet.pts is not None else packet.dts or 0
        if self.last_end is not None and arrived < self.last_end:
            arrived = self.last_end
        anchor = self._anchor
        if anchor is None or anchor[0] != packet.stream.generation:
            self._anchor = (packet.stream.generation, pts, arrived)
            return arrived
        start = previous_end or anchor[2] + timedelta(seconds=float((pts - anchor[1]) * packet.stream.time_base))
        drift = (start - arrived).total_seconds()
        if abs(drift) > MAX_DRIFT_S:
            log.info("camera %s: its clock drifted %.2f s from ours; re-anchored", self.camera, drift)
            self._anchor = (packet.stream.generation, pts, arrived)
            return arrived
        return start
