"""What a camera source hands to its hub: encoded packets and the stream they belong to."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """The parameters of one connection to a camera; a new one is made on every (re)connect."""

    codec: str  # FFmpeg codec name: "h264" or "hevc"
    width: int
    height: int
    time_base: Fraction
    extradata: bytes | None  # parameter sets as FFmpeg gives them (Annex B for RTSP)
    generation: int  # increases on every reconnect, so consumers know to reset decoders
    # time_base as a float, for the per-packet arithmetic: a Fraction product on every packet was a
    # measurable share of the hub's and the recorder's CPU (benchmarks/FINDINGS.md); a double holds
    # 90 kHz ticks exactly enough for days of timestamps.
    tick_s: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tick_s", float(self.time_base))


@dataclass(frozen=True, slots=True)
class Packet:
    """One encoded access unit, detached from PyAV so it can cross threads and be shared freely."""

    data: bytes
    pts: int | None
    dts: int | None
    keyframe: bool
    stream: StreamInfo
    arrival: float  # time.monotonic() when the demuxer returned it

    @property
    def pts_seconds(self) -> float | None:
        return None if self.pts is None else self.pts * self.stream.tick_s
