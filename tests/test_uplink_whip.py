"""The WHIP client against a real WHIP server: meetecho's simple-whip-server (Debian's package) on Janus.

Janus and the WHIP server run in a network namespace; the uplink publisher runs in-process with a real
simulated camera and hub, and publishes with plain WHIP (POST the offer with a bearer token, 201 with the
answer and a Location, DELETE to stop). An operator subscribes through Janus and decodes frames.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from edgeagent.camera.hub import CameraHub
from edgeagent.camera.source import CameraSource
from edgeagent.config import CameraSection, WebRtcSection
from edgeagent.live.service import LiveService
from edgeagent.uplink.publisher import UplinkState
from edgeagent.uplink.service import UplinkService
from edgeagent.uplink.settings import UplinkSection
from edgeagent.uplink.signaling import SignalingError
from edgeagent.uplink.whip import WhipClient
from tests.support.browser import looks_like_smpte, summarise_rgb
from tests.support.camera import Camera
from tests.support.janus import JANUS_SECRET, Janus, JanusViewer, Netns
from tests.support.whip import WhipServer, available


@pytest.fixture(autouse=True)
def whip_server_installed() -> None:
    """Missing parts fail these tests (a skip would read as a pass): scripts/setup.sh installs them all."""
    if shutil.which("janus") is None or os.geteuid() != 0 or not available():
        pytest.fail("needs Debian's janus, root (network namespace) and scripts/setup-whip-server.sh (make setup)")

ROOM = 7070
TOKEN = "whip-bearer-token-for-tests"


async def until(probe, within_s: float, what: str):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + within_s
    while not (result := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s:g} s waiting for {what}")
        await asyncio.sleep(0.05)
    return result


async def publishers(viewer: JanusViewer, present: bool, name: str, within_s: float) -> dict[str, int]:
    deadline = time.monotonic() + within_s
    while (name in (found := await viewer.publishers())) != present:
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} {'not ' if present else ''}publishing after {within_s:g} s: {found}")
        await asyncio.sleep(0.2)
    return found


@pytest.fixture
async def whip(netns: Netns, tmp_path: Path):  # noqa: ANN201
    janus = Janus(netns, tmp_path / "janus", api_secret=JANUS_SECRET, websockets=True).start()
    server = WhipServer(janus, tmp_path / "whip").start()
    # The WHIP server publishes into an existing room: the centre makes it (H.264) beforehand.
    maker = JanusViewer(janus, ROOM)
    try:
        await maker.client.open()
        await maker.client.request({"request": "create", "room": ROOM, "videocodec": "h264", "publishers": 8})
        await until(lambda: "Connected to Janus" in server.log_text(), 15, "the WHIP server reaching Janus")
        server.create_endpoint("north", ROOM, TOKEN)
        yield server
    finally:
        await maker.close()
        server.kill()
        janus.kill()
        print(f"----- whip server log -----\n{server.log_text()[-3000:]}")
        print(f"----- janus log -----\n{janus.log_text()[-3000:]}")


async def test_the_whip_client_publishes_through_a_real_whip_server_and_stops_with_delete(whip, tmp_path):
    camera = Camera(log_path=tmp_path / "camera.log", fps=25, gop_s=1, width=640, height=360).start()
    token = tmp_path / "whip-token"
    token.write_text(TOKEN)
    token.chmod(0o600)
    section = CameraSection(url=camera.url, stall_timeout_s=3)
    hub = CameraHub("north")
    source = CameraSource("north", section, None, hub)
    source.start()
    webrtc = WebRtcSection(host_addresses=[whip.janus.netns.uplink.host_ip])
    live = LiveService(webrtc, {"north": section}, {"north": hub})
    settings = UplinkSection(kind="whip", url=whip.base + "/endpoint/{camera}", token_file=token)
    uplink = UplinkService(settings, webrtc, "cabinet-17", {"north": live.feed("north")})
    viewer = JanusViewer(whip.janus, ROOM)
    try:
        await uplink.start()
        uplink.request("north", "start")
        publisher = uplink.publishers["north"]
        await until(lambda: publisher.state == UplinkState.PUBLISHING, 20, "the WHIP publication")
        feed = (await publishers(viewer, True, "north", 10))["north"]
        await viewer.subscribe(feed)
        await viewer.wait_frames(25, within_s=15)
        assert "[north] Publishing to WHIP endpoint" in whip.log_text()
        assert looks_like_smpte(summarise_rgb(viewer.last_frame.to_ndarray(format="rgb24")))

        uplink.request("north", "stop")  # DELETE on the resource: the server ends the publication
        await until(lambda: publisher.state == UplinkState.STOPPED, 10, "the stop")
        await publishers(viewer, False, "north", 10)
        assert "[north] Terminating WHIP session" in whip.log_text(), "the DELETE reached the server"
    finally:
        await viewer.close()
        await uplink.close()
        await live.close()
        await source.stop()
        camera.close()


async def test_a_wrong_bearer_token_is_refused_by_the_whip_server(whip):
    async with aiohttp.ClientSession() as http:
        client = WhipClient(http, whip.endpoint("north"), SecretStr("not-the-token"), timeout_s=5)
        with pytest.raises(SignalingError, match="HTTP 403"):
            await client.publish("v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-ufrag:x\r\na=ice-pwd:y\r\n")
        assert client.resource is None
