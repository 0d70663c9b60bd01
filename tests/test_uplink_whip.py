"""The WHIP client against a real WHIP server: meetecho's simple-whip-server (Debian's package) on Janus.

Janus and the WHIP server run in a network namespace; the uplink publisher runs in-process with a real
simulated camera and hub, and publishes with plain WHIP (POST the offer with a bearer token, 201 with the
answer and a Location, DELETE to stop). An operator subscribes through Janus and decodes frames.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from edgeagent.health import as_json
from edgeagent.uplink.publisher import UplinkState
from edgeagent.uplink.signaling import SignalingError
from edgeagent.uplink.whip import WhipClient
from tests.support.browser import looks_like_smpte, summarise_rgb
from tests.support.janus import JANUS_SECRET, Janus, JanusViewer, Netns
from tests.support.uplink import room_publishers
from tests.support.wait import wait_until_async as until
from tests.support.whip import WhipServer, available


@pytest.fixture(autouse=True)
def whip_server_installed() -> None:
    """Missing parts fail these tests (a skip would read as a pass): scripts/setup.sh installs them all."""
    if shutil.which("janus") is None or os.geteuid() != 0 or not available():
        pytest.fail("needs Debian's janus, root (network namespace) and scripts/setup-whip-server.sh (make setup)")


ROOM = 7070
TOKEN = "whip-bearer-token-for-tests"


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


async def test_the_whip_client_publishes_through_a_real_whip_server_and_stops_with_delete(whip, uplink_rig):
    rig = await uplink_rig(whip.janus, TOKEN, kind="whip", url=whip.base + "/endpoint/{camera}")
    rig.uplink.request("north", "start")
    await until(lambda: rig.publisher.state == UplinkState.PUBLISHING, 20, "the WHIP publication")
    viewer = await rig.viewer(ROOM, "north")
    await viewer.wait_frames(25, within_s=15)
    assert "[north] Publishing to WHIP endpoint" in whip.log_text()
    assert looks_like_smpte(summarise_rgb(viewer.last_frame.to_ndarray(format="rgb24")))
    health = as_json(rig.health())
    assert (health["kind"], health["state"], health["publishes_connected"]) == ("whip", "publishing", 1), health
    assert rig.metrics()[("edgeagent_uplink_publishing", frozenset({("camera", "north"), ("kind", "whip")}))] == 1

    rig.uplink.request("north", "stop")  # DELETE on the resource: the server ends the publication
    await until(lambda: rig.publisher.state == UplinkState.STOPPED, 10, "the stop")
    await room_publishers(viewer, "north", present=False)
    assert "[north] Terminating WHIP session" in whip.log_text(), "the DELETE reached the server"
    health = as_json(rig.health())
    assert (health["wanted"], health["publishing"], health["reason"]) == (False, False, None), health


async def test_a_wrong_bearer_token_is_refused_by_the_whip_server(whip):
    async with aiohttp.ClientSession() as http:
        client = WhipClient(http, whip.endpoint("north"), SecretStr("not-the-token"), timeout_s=5)
        with pytest.raises(SignalingError, match="HTTP 403"):
            await client.publish("v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-ufrag:x\r\na=ice-pwd:y\r\n")
        assert client.resource is None
