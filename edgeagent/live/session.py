"""One viewer: a peer connection, its video track, and what it has cost so far."""

from __future__ import annotations

import enum
import time

from aiortc import RTCPeerConnection

from edgeagent.live.track import CameraTrack


class SessionState(enum.StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


class LiveSession:
    def __init__(self, session_id: str, camera: str, pc: RTCPeerConnection, track: CameraTrack) -> None:
        self.id = session_id
        self.camera = camera
        self.pc = pc
        self.track = track
        self.state = SessionState.CONNECTING
        self.created_at = time.monotonic()
        self.connected_at: float | None = None
        self.closed_reason: str | None = None

    @property
    def time_to_first_frame_s(self) -> float | None:
        """From the offer to the first keyframe handed to the sender."""
        first = self.track.first_frame_at
        return None if first is None else first - self.created_at

    @property
    def time_to_live_s(self) -> float | None:
        """From the offer to the end of the cached GOP: the browser shows the live picture from here."""
        caught_up = self.track.caught_up_at
        return None if caught_up is None else caught_up - self.created_at

    def counters(self) -> dict[str, int]:
        return {
            "bytes_sent": self.track.bytes_sent,
            "packets_sent": self.track.packets_sent,
            "packets_dropped": self.track.packets_dropped,
            "keyframe_requests": self.track.keyframe_requests,
        }
