"""Hub packets and stream descriptions for tests that feed a hub (or a consumer) by hand."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from edgeagent.camera.packet import Packet, StreamInfo

TIME_BASE = Fraction(1, 90000)  # RTSP's video clock
FRAME_TICKS = 3600  # one frame at 25 fps on that clock
H264_IDR = b"\x00\x00\x01\x65"  # an Annex B start code and an IDR slice header byte: a keyframe to look at


def stream_info(
    codec: str = "h264",
    width: int = 640,
    height: int = 360,
    *,
    generation: int = 1,
    time_base: Fraction = TIME_BASE,
    extradata: bytes | None = None,
) -> StreamInfo:
    return StreamInfo(codec, width, height, time_base, extradata, generation)


STREAM = stream_info()  # H.264 640x360, generation 1


def packet(
    index: int = 0,
    keyframe: bool = False,
    stream: StreamInfo = STREAM,
    size: int = 100,
    *,
    data: bytes | None = None,
    pts: Any = ...,
    dts: Any = ...,
    arrival: float | None = None,
) -> Packet:
    """Frame ``index`` of a 25 fps stream: ``size`` zero bytes (or ``data``), pts = dts = index frames on
    the 90 kHz clock unless given (``None`` allowed: a camera without timestamps), arriving 40 ms apart
    from t = 1000 s unless ``arrival`` says otherwise."""
    pts = index * FRAME_TICKS if pts is ... else pts
    dts = pts if dts is ... else dts
    body = data if data is not None else bytes(size)
    return Packet(body, pts, dts, keyframe, stream, 1000 + index / 25 if arrival is None else arrival)
