"""What an offer must hold before a peer connection is spent on it, and the codecs the agent answers with.

aiortc's SDP parser is lenient (an empty string parses), so these checks give the operator a precise,
one-line reason for a refusal instead of an exception from deep inside the negotiation.
"""

from __future__ import annotations

from aiortc import RTCRtpSender
from aiortc.codecs import CODECS
from aiortc.rtcpeerconnection import find_common_codecs
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from aiortc.sdp import SessionDescription

from edgeagent.live.errors import LiveError

MAX_SDP_BYTES = 64 * 1024
MAX_SDP_LINE_BYTES = 1024  # a browser's longest lines (fingerprint, fmtp, extmap) are under 200 bytes
MAX_MEDIA_SECTIONS = 8  # each section may cost a transport, with its sockets; a viewer needs one or three


def h264_preferences() -> list[RTCRtpCodecCapability]:
    """H.264 (packetization-mode 1) and its retransmission format: all a viewer can be sent."""
    codecs = RTCRtpSender.getCapabilities("video").codecs
    return [codec for codec in codecs if codec.mimeType.lower() in ("video/h264", "video/rtx")]


def check_offer(text: str) -> None:
    """Raise ``LiveError`` (400 malformed, 406 no H.264) unless ``text`` is an offer the agent can answer."""
    if len(text.encode()) > MAX_SDP_BYTES:
        raise LiveError(400, f"offer is larger than {MAX_SDP_BYTES} bytes")
    if not text.lstrip().startswith("v=0"):
        raise LiveError(400, "malformed SDP: an offer starts with v=0")
    lines = text.splitlines()
    longest = max(len(line.encode()) for line in lines)
    if longest > MAX_SDP_LINE_BYTES:
        raise LiveError(400, f"malformed SDP: a line of {longest} bytes (at most {MAX_SDP_LINE_BYTES})")
    sections = sum(1 for line in lines if line.startswith("m="))
    if sections > MAX_MEDIA_SECTIONS:
        raise LiveError(400, f"offer has {sections} media sections (at most {MAX_MEDIA_SECTIONS})")
    try:
        description = SessionDescription.parse(text)
    except Exception as exc:  # the parser asserts and indexes its way through the text
        raise LiveError(400, f"malformed SDP ({type(exc).__name__})") from None
    videos = [media for media in description.media if media.kind == "video"]
    if not videos:
        raise LiveError(400, "offer has no video section")
    video = videos[0]
    if video.direction in ("sendonly", "inactive"):
        raise LiveError(400, f"offer does not receive video (direction {video.direction})")
    if video.ice is None or not video.ice.usernameFragment or not video.ice.password:
        raise LiveError(400, "offer has no ICE credentials (ice-ufrag, ice-pwd)")
    if video.dtls is None or not video.dtls.fingerprints:
        raise LiveError(400, "offer has no DTLS fingerprint")
    offered = find_common_codecs(CODECS["video"], video.rtp.codecs)
    if not any(codec.mimeType.lower() == "video/h264" for codec in offered):
        names = sorted({codec.mimeType.split("/")[-1] for codec in video.rtp.codecs}) or ["none"]
        raise LiveError(
            406, f"no common codec: the agent sends H.264 (packetization-mode 1), the offer has {', '.join(names)}"
        )
