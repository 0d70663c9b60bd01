"""The records every part of recording shares: a segment on disk, a gap with its reason, a lock, a bookmark."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path


class GapReason(StrEnum):
    CAMERA_OFFLINE = "camera offline"
    STALL = "stall"
    DISK_FULL = "disk full"
    AGENT_STOPPED = "agent stopped"
    AGENT_CRASHED = "agent crashed"
    RECORDING_DISABLED = "recording disabled"
    # Added by the recorder: a hole of at most one GOP until the next keyframe.
    TIMESTAMP_JUMP = "timestamp jump"  # the camera's clock jumped or ran backwards (RTP wrap, reboot)
    RECORDER_OVERLOADED = "recorder overloaded"  # the disk was too slow: packets were dropped


@dataclass(frozen=True)
class Segment:
    """One fragmented-MP4 file. Times are timezone-aware UTC; ``start`` is the wall-clock time of the
    first frame, kept exactly (the muxer rebases its own timestamps to zero)."""

    camera: str
    path: Path
    start: datetime
    end: datetime
    bytes: int
    codec: str  # "h264" or "hevc"
    width: int
    height: int
    sha256: str  # hex digest of the whole file
    prev_sha256: str | None  # the previous segment's digest for this camera: the hash chain
    # Still being written (``edgeagent.record.growing``): ``end``, ``bytes`` and ``sha256`` are those of
    # its whole fragments so far, the file's first ``bytes`` bytes.
    open: bool = False


@dataclass(frozen=True)
class Gap:
    camera: str
    start: datetime
    end: datetime
    reason: GapReason


@dataclass(frozen=True)
class Lock:
    """A range that retention never deletes; ``end`` may lie in the future (an incident still going on)."""

    id: str
    camera: str
    start: datetime
    end: datetime
    reason: str
    created: datetime


@dataclass(frozen=True)
class Bookmark:
    """A mark on a camera's recording timeline: an ONVIF event (motion, tamper) or a picture alarm the agent
    raised (frozen, blank, blurred, moved). ``text`` is short and bounded (``edgeagent.record.bookmarks``)."""

    camera: str
    at: datetime
    kind: str
    source: str  # "onvif" or "picture"
    text: str
