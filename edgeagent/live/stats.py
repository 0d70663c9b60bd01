"""Live-view figures of one camera, as one typed record (read by health, MQTT, HTTP and /metrics)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LiveStats:
    """Viewers of a camera and what they cost; the counters include the sessions already closed."""

    viewers: int
    viewers_connected: int
    bytes_sent: int
    packets_sent: int
    packets_dropped: int
    keyframe_requests: int
    time_to_first_frame_s: float | None
    time_to_live_s: float | None
    transcoding: bool
    transcoders_started: int
    transcode: dict[str, object] | None  # the shared transcoder's own figures while it runs
