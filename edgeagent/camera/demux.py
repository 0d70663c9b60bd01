"""One opened RTSP stream: the demuxer's options, the checks a stream must pass, and its packets.

Runs on the camera's ingest thread (:mod:`edgeagent.camera.source` owns the thread and the reconnects).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from fractions import Fraction

import av

from edgeagent.camera.annexb import SUPPORTED_CODECS, declared_picture_size, with_parameter_sets
from edgeagent.camera.failures import CameraRefused
from edgeagent.camera.packet import Packet, StreamInfo
from edgeagent.camera.picture_size import picture_size_problem
from edgeagent.config import CameraSection


def demuxer_options(section: CameraSection) -> dict[str, str]:
    return {
        "rtsp_transport": section.transport,
        # The RTSP demuxer's socket timeout (µs) bounds every read: without it a silent camera blocks
        # forever. It is FFmpeg's own, in C. (PyAV's read timeout would bound reads too, but its
        # interrupt callback takes the GIL on every check FFmpeg makes, several per RTP packet: it
        # cost 1 % of a core per camera, more with many.) The watchdog names a stall first; this
        # frees the thread for the next connection, after one to two times the stall timeout.
        "timeout": str(int(section.stall_timeout_s * 1_000_000)),
        "allowed_media_types": "video",
        # Half a second of probing finds the size and rate of a camera that sends its parameter sets
        # in the SDP (or at least every half second), and is half of the time to online after a reboot.
        "analyzeduration": "500000",
        "probesize": "500000",
    }


def checked_stream(container: av.container.InputContainer, generation: int) -> tuple[av.VideoStream, StreamInfo]:
    """The container's video stream, or :class:`CameraRefused` saying why it cannot be used."""
    if not container.streams.video:
        raise CameraRefused("the camera offers no video stream")
    video = container.streams.video[0]
    codec = video.codec_context.name
    if codec not in SUPPORTED_CODECS:
        raise CameraRefused(f"unsupported codec {codec!r} (H.264 and H.265 are supported)")
    extradata = bytes(video.codec_context.extradata or b"") or None
    width, height = video.codec_context.width, video.codec_context.height
    problem = picture_size_problem(width, height, declared_picture_size(extradata, codec))
    if problem:
        raise CameraRefused(problem)
    stream = StreamInfo(
        codec=codec,
        width=width,
        height=height,
        time_base=video.time_base or Fraction(1, 90000),
        extradata=extradata,
        generation=generation,
    )
    return video, stream


def demux(
    container: av.container.InputContainer,
    video: av.VideoStream,
    stream: StreamInfo,
    should_end: Callable[[], bool],
    deliver: Callable[[Packet], None],
) -> None:
    """Hand every packet to ``deliver`` until the stream ends or ``should_end`` says so."""
    check_size = not (stream.width and stream.height)
    for av_packet in container.demux(video):
        if should_end():
            return
        if av_packet.size == 0:
            continue  # the demuxer's end-of-stream marker
        data = bytes(av_packet)
        keyframe = av_packet.is_keyframe
        if keyframe:
            data = with_parameter_sets(data, stream.codec, stream.extradata)
            if check_size:  # FFmpeg found no size: the SPS came in band, and may be absurd
                problem = picture_size_problem(0, 0, declared_picture_size(data, stream.codec))
                if problem:
                    raise CameraRefused(problem)
                check_size = False
        deliver(
            Packet(
                data=data,
                pts=av_packet.pts,
                dts=av_packet.dts,
                keyframe=keyframe,
                stream=stream,
                arrival=time.monotonic(),
            )
        )
