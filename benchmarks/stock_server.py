"""The reference for the live-view benchmarks: stock aiortc serving one RTSP camera without decoding.

What a user would write from aiortc's own examples (``webcam.py --play-without-decoding``): one
``MediaPlayer(url, decode=False)``, one ``MediaRelay`` fanning its video out, a peer connection per viewer
with H.264 forced. It speaks the same WHEP exchange as the agent so the same clients can be pointed at it.

    python -m benchmarks.stock_server --url rtsp://127.0.0.1:8554/stream1 [--port 0]

Prints ``READY http://127.0.0.1:PORT/whep/cam`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal

from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer, MediaRelay

from benchmarks.webrtc_client import pin_loopback


def force_codec(pc: RTCPeerConnection, sender: RTCRtpSender, mime: str) -> None:
    codecs = RTCRtpSender.getCapabilities(mime.split("/")[0]).codecs
    transceiver = next(t for t in pc.getTransceivers() if t.sender == sender)
    transceiver.setCodecPreferences([c for c in codecs if c.mimeType == mime])


async def main_async(args: argparse.Namespace) -> None:
    # Blocks about a second while it opens the stream: done before serving, as the examples do.
    player = MediaPlayer(args.url, options={"rtsp_transport": "tcp"}, decode=False)
    relay = MediaRelay()
    pcs: dict[str, RTCPeerConnection] = {}
    ids = itertools.count()

    async def offer(request: web.Request) -> web.Response:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        session = str(next(ids))
        pcs[session] = pc
        sender = pc.addTrack(relay.subscribe(player.video))
        force_codec(pc, sender, "video/H264")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=await request.text(), type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(status=201, text=pc.localDescription.sdp, content_type="application/sdp",
                            headers={"Location": f"/whep/sessions/{session}"})

    async def delete(request: web.Request) -> web.Response:
        pc = pcs.pop(request.match_info["session"], None)
        if pc is not None:
            await pc.close()
        return web.Response(status=200 if pc else 404)

    app = web.Application()
    app.router.add_post("/whep/{camera}", offer)
    app.router.add_delete("/whep/sessions/{session}", delete)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port)
    await site.start()
    port = runner.addresses[0][1]
    print(f"READY http://127.0.0.1:{port}/whep/cam", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await asyncio.gather(*(pc.close() for pc in pcs.values()), return_exceptions=True)
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description="stock aiortc reference server (see the module's docstring)")
    parser.add_argument("--url", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    pin_loopback()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
