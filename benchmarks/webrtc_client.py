"""Light WebRTC viewers for the benchmarks: aiortc peer connections that count what arrives, never decode.

Each viewer offers to receive H.264 over WHEP (``POST`` an SDP offer, ``201`` with the answer), so the
same clients serve the agent and the stock-aiortc reference. The receiver's RTP handler is replaced by a
counter: packets, bytes, frames (RTP marker bits) and the arrival of the first whole keyframe; no jitter
buffer, no depacketising, no decoder, so the clients cost as little as SRTP allows and their CPU is
reported apart from the server's.

Driven over stdin/stdout by the benchmark, one command a line, one answer a line (JSON after the word):

    JOIN n      -> JOINED {"ttff_s": [...], "signaling_s": [...], ...}   n new viewers, one after the other
    LEAVE n     -> LEFT n                                                the n newest viewers end (WHEP DELETE)
    MARK        -> MARKED                                                start a measurement window
    STATS       -> STATS {"viewers": [...], "cpu_pct": ..., "window_s": ...}
    QUIT
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket

KEY_NAL_TYPES = {5, 7}  # IDR slice, SPS


def pin_loopback() -> None:
    """aioice leaves loopback out of its host candidates; on one machine it is the only sure path."""
    aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"]  # type: ignore[assignment]


def has_keyframe(payload: bytes) -> bool:
    """Whether an H.264 RTP payload (RFC 6184) starts or carries an IDR picture or an SPS."""
    if not payload:
        return False
    nal = payload[0] & 0x1F
    if nal == 24:  # STAP-A: 16-bit sizes, then NAL units
        position = 1
        while position + 2 < len(payload):
            size = int.from_bytes(payload[position:position + 2], "big")
            if payload[position + 2] & 0x1F in KEY_NAL_TYPES:
                return True
            position += 2 + size
        return False
    if nal == 28:  # FU-A: the start fragment names the NAL type
        return len(payload) > 1 and bool(payload[1] & 0x80) and (payload[1] & 0x1F) in KEY_NAL_TYPES
    return nal in KEY_NAL_TYPES


@dataclass
class Viewer:
    index: int
    started: float = 0.0
    answered: float | None = None
    connected: float | None = None
    first_keyframe: float | None = None  # arrival of the last packet of the first keyframe
    key_timestamp: int | None = None
    packets: int = 0
    bytes: int = 0
    frames: int = 0
    keyframes: int = 0
    mark: tuple[int, int, int] = (0, 0, 0)
    pc: RTCPeerConnection | None = None
    location: str | None = None
    keyframe_event: asyncio.Event = field(default_factory=asyncio.Event)

    def on_packet(self, packet: RtpPacket) -> None:
        self.packets += 1
        self.bytes += len(packet.payload)
        if has_keyframe(packet.payload):
            if self.key_timestamp != packet.timestamp:
                self.keyframes += 1
            self.key_timestamp = packet.timestamp
        if packet.marker:
            self.frames += 1
            if self.first_keyframe is None and packet.timestamp == self.key_timestamp:
                self.first_keyframe = time.monotonic()
                self.keyframe_event.set()


async def _count_only(self: RTCRtpReceiver, packet: RtpPacket, arrival_time_ms: int) -> None:
    viewer = getattr(self, "bench_viewer", None)
    if viewer is not None:
        viewer.on_packet(packet)


def count_only() -> None:
    """Make every receiver of this process count RTP packets instead of depacketising and decoding.

    Process-wide, so only ever called from this client's ``main``: importing the module changes nothing.
    """
    RTCRtpReceiver._handle_rtp_packet = _count_only  # type: ignore[method-assign]


class Clients:
    def __init__(self, whep: str, token: str | None) -> None:
        self.whep = whep
        self.headers = {"Content-Type": "application/sdp"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.viewers: list[Viewer] = []
        self.count = 0
        self.mark_wall = time.monotonic()
        self.mark_cpu = time.process_time()
        self.session: aiohttp.ClientSession | None = None

    async def join_one(self, timeout_s: float) -> Viewer:
        assert self.session is not None
        viewer = Viewer(self.count)
        self.count += 1
        viewer.started = time.monotonic()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        viewer.pc = pc
        transceiver = pc.addTransceiver("video", direction="recvonly")
        transceiver.receiver.bench_viewer = viewer  # type: ignore[attr-defined]

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc.connectionState == "connected" and viewer.connected is None:
                viewer.connected = time.monotonic()

        await pc.setLocalDescription(await pc.createOffer())
        async with self.session.post(self.whep, data=pc.localDescription.sdp, headers=self.headers) as response:
            body = await response.text()
            if response.status != 201:
                raise RuntimeError(f"WHEP answered {response.status}: {body.strip()[:200]}")
            viewer.location = response.headers.get("Location")
        viewer.answered = time.monotonic()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        self.viewers.append(viewer)
        try:
            await asyncio.wait_for(viewer.keyframe_event.wait(), timeout_s)
        except TimeoutError:
            pass  # reported as no first frame
        return viewer

    async def join(self, count: int, timeout_s: float) -> dict[str, Any]:
        joined = [await self.join_one(timeout_s) for _ in range(count)]

        def since(v: Viewer, t: float | None) -> float | None:
            return None if t is None else round(t - v.started, 4)

        return {
            "ttff_s": [since(v, v.first_keyframe) for v in joined],
            "signaling_s": [since(v, v.answered) for v in joined],
            "connected_s": [since(v, v.connected) for v in joined],
        }

    async def leave(self, count: int) -> None:
        assert self.session is not None
        for _ in range(min(count, len(self.viewers))):
            viewer = self.viewers.pop()
            if viewer.location:
                base = self.whep.split("/whep/")[0]
                try:
                    async with self.session.delete(base + viewer.location, headers=self.headers):
                        pass
                except aiohttp.ClientError:
                    pass
            if viewer.pc is not None:
                await viewer.pc.close()

    def mark(self) -> None:
        self.mark_wall = time.monotonic()
        self.mark_cpu = time.process_time()
        for viewer in self.viewers:
            viewer.mark = (viewer.packets, viewer.bytes, viewer.frames)

    def stats(self) -> dict[str, Any]:
        wall = time.monotonic() - self.mark_wall
        viewers = []
        for v in self.viewers:
            packets, size, frames = v.packets - v.mark[0], v.bytes - v.mark[1], v.frames - v.mark[2]
            viewers.append({"fps": frames / wall, "kbps": size * 8 / wall / 1000, "packets": packets,
                            "frames_total": v.frames, "keyframes_total": v.keyframes,
                            "state": v.pc.connectionState if v.pc else None})
        return {"window_s": wall, "cpu_pct": 100 * (time.process_time() - self.mark_cpu) / wall, "viewers": viewers}


def _stdin_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str]) -> None:
    for line in sys.stdin:
        loop.call_soon_threadsafe(queue.put_nowait, line.strip())
    loop.call_soon_threadsafe(queue.put_nowait, "QUIT")


def answer(word: str, payload: Any = None) -> None:
    print(word if payload is None else f"{word} {json.dumps(payload)}", flush=True)


async def main_async(args: argparse.Namespace) -> None:
    clients = Clients(args.whep, args.token)
    queue: asyncio.Queue[str] = asyncio.Queue()
    threading.Thread(target=_stdin_lines, args=(asyncio.get_running_loop(), queue), daemon=True).start()
    async with aiohttp.ClientSession() as session:
        clients.session = session
        answer("READY")
        while True:
            command, _, rest = (await queue.get()).partition(" ")
            try:
                if command == "JOIN":
                    answer("JOINED", await clients.join(int(rest or 1), args.timeout))
                elif command == "LEAVE":
                    await clients.leave(int(rest or 1))
                    answer("LEFT", int(rest or 1))
                elif command == "MARK":
                    clients.mark()
                    answer("MARKED")
                elif command == "STATS":
                    answer("STATS", clients.stats())
                elif command == "QUIT":
                    break
                else:
                    answer("ERROR", f"unknown command {command!r}")
            except Exception as exc:  # report, keep serving: the benchmark decides
                answer("ERROR", f"{type(exc).__name__}: {exc}")
        await clients.leave(len(clients.viewers))


def main() -> None:
    parser = argparse.ArgumentParser(description="light WebRTC viewers (see the module's docstring)")
    parser.add_argument("--whep", required=True, help="WHEP endpoint, e.g. http://127.0.0.1:8080/whep/cam1")
    parser.add_argument("--token", default=None)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a first keyframe")
    args = parser.parse_args()
    count_only()
    pin_loopback()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
