"""An offer that lists many ICE candidates: the agent checks at most MAX_CHECKED_ADDRESSES of them.

Real parts: the LiveService with aiortc/aioice doing its connectivity checks, and 40 UDP sockets on
127.0.0.1 standing in for the addresses an attacker lists, each counting the STUN requests it receives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from edgeagent.camera.hub import CameraHub
from edgeagent.config import CameraSection, WebRtcSection
from edgeagent.live.candidates import MAX_CANDIDATE_LINES, MAX_CHECKED_ADDRESSES
from edgeagent.live.service import LiveService
from edgeagent.live.whep import add_routes
from tests.support.live_client import PythonViewer
from tests.support.wait import wait_until_async

DECOYS = 40
STUN_MAGIC_COOKIE = b"\x21\x12\xa4\x42"


class StunCounter(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.requests = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data[:2] == b"\x00\x01" and data[4:8] == STUN_MAGIC_COOKIE:  # a STUN binding request
            self.requests += 1


@pytest.fixture
async def service() -> AsyncIterator[LiveService]:
    # No camera is needed: an offer is checked, answered and ICE-checked before any picture flows.
    sections = {"north": CameraSection(url="rtsp://127.0.0.1:9/none")}
    live = LiveService(WebRtcSection(host_addresses=["127.0.0.1"]), sections, {"north": CameraHub("north")})
    yield live
    await live.close()


async def offer_listing(addresses: list[tuple[str, int]]) -> str:
    """A real aiortc offer whose candidates are replaced by ``addresses`` (nobody answers at any of them)."""
    viewer = PythonViewer()
    try:
        sdp = await viewer.offer()
    finally:
        await viewer.close()
    lines = [line for line in sdp.splitlines() if not line.startswith("a=candidate:")]
    at = lines.index("a=end-of-candidates")
    candidates = [
        f"a=candidate:d{i} 1 udp 2130706431 {host} {port} typ host" for i, (host, port) in enumerate(addresses)
    ]
    return "\r\n".join(lines[:at] + candidates + lines[at:]) + "\r\n"


async def test_an_offer_with_40_candidates_gets_stun_checks_to_16_addresses_only(service):
    loop = asyncio.get_running_loop()
    decoys: list[tuple[asyncio.DatagramTransport, StunCounter]] = [
        await loop.create_datagram_endpoint(StunCounter, local_addr=("127.0.0.1", 0)) for _ in range(DECOYS)
    ]
    try:
        addresses = [transport.get_extra_info("sockname")[:2] for transport, _ in decoys]
        session_id, answer = await service.offer("north", await offer_listing(addresses))
        assert answer.startswith("v=0")

        def contacted() -> int:
            return sum(1 for _, counter in decoys if counter.requests)

        await wait_until_async(lambda: contacted() >= MAX_CHECKED_ADDRESSES, 10,
                               f"{MAX_CHECKED_ADDRESSES} addresses checked")
        # aioice starts one check every 20 ms and retransmits after 0.5 s: in 1.5 s more, a 17th address
        # would have been checked if the agent had kept it.
        await asyncio.sleep(1.5)
        assert contacted() == MAX_CHECKED_ADDRESSES
        assert [counter.requests > 0 for _, counter in decoys[:MAX_CHECKED_ADDRESSES]] == [True] * 16
        assert await service.close_session(session_id) is True
    finally:
        for transport, _ in decoys:
            transport.close()


async def test_an_offer_with_800_candidates_is_refused_over_whep_with_one_line(service):
    hostile = await offer_listing([(f"10.0.{i // 250}.{1 + i % 250}", 50000) for i in range(800)])
    app = web.Application()
    add_routes(app, service)
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/whep/north", data=hostile, headers={"Content-Type": "application/sdp"})
        assert response.status == 400
        assert await response.text() == (
            f"offer lists 800 ICE candidates; the agent takes at most {MAX_CANDIDATE_LINES}\n"
        )
    assert service.sessions() == [] and service.sessions_started == 0  # no peer connection was spent
