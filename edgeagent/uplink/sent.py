"""What an uplink sent, read from aiortc's own statistics of its peer connection.

``RTCPeerConnection.getStats()`` merges each sender's ``outbound-rtp`` record (RTP payload octets and
packets) with its DTLS transport's ``transport`` record (every SRTP, SRTCP and DTLS datagram handed to
UDP). The transport's figures are what the cabinet's link carries, less the UDP/IP headers. aiortc keeps
the counters per peer connection, so a publisher adds up the ones already closed.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortc import RTCPeerConnection


@dataclass(frozen=True, slots=True)
class Sent:
    bytes: int = 0  # datagrams handed to UDP: SRTP, SRTCP, DTLS
    packets: int = 0
    payload_bytes: int = 0  # the media in the RTP packets (H.264)

    def __add__(self, other: Sent) -> Sent:
        return Sent(self.bytes + other.bytes, self.packets + other.packets, self.payload_bytes + other.payload_bytes)


async def sent_by(pc: RTCPeerConnection) -> Sent:
    """The peer connection's counters of the moment (aiortc computes them without I/O)."""
    report = await pc.getStats()
    transports = [stats for stats in report.values() if stats.type == "transport"]
    outbound = [stats for stats in report.values() if stats.type == "outbound-rtp"]
    return Sent(
        bytes=sum(int(getattr(stats, "bytesSent", 0) or 0) for stats in transports),
        packets=sum(int(getattr(stats, "packetsSent", 0) or 0) for stats in transports),
        payload_bytes=sum(int(getattr(stats, "bytesSent", 0) or 0) for stats in outbound),
    )
