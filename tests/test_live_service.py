"""LiveService in-process with real parts: a GStreamer camera, the RTSP source and hub, aiortc on both ends.

The viewer is a Python aiortc client that decodes what it receives; the browser tests check the same
behaviours through Chromium against the agent process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiortc.rtp import RTCP_PSFB_PLI, RtcpPsfbPacket

from edgeagent.camera.hub import CameraHub
from edgeagent.camera.source import CameraSource
from edgeagent.config import CameraSection, WebRtcSection
from edgeagent.live.errors import LiveError
from edgeagent.live.service import LiveService
from edgeagent.live.signaling import handle_mqtt_offer
from edgeagent.live.transcode import MIN_FORCED_KEYFRAME_INTERVAL_S
from edgeagent.live.whep import add_routes
from tests.support.browser import lit, looks_like_smpte
from tests.support.camera import Camera
from tests.support.live_client import PythonViewer
from tests.support.wait import wait_until_async as until  # polls on the loop: no event for "the camera sent a GOP"
from tests.test_live_h264 import write_clip

FPS = 25


@dataclass
class Rig:
    service: LiveService
    hubs: dict[str, CameraHub]
    sources: dict[str, CameraSource]
    viewers: list[PythonViewer] = field(default_factory=list)

    async def viewer(self, camera: str, **options: Any) -> tuple[PythonViewer, str]:
        viewer = PythonViewer(**options)
        self.viewers.append(viewer)
        session_id, answer = await self.service.offer(camera, await viewer.offer())
        await viewer.accept(answer)
        return viewer, session_id

    async def streaming(self, camera: str, gop_packets: int = 1, within_s: float = 15) -> CameraHub:
        """The camera's hub once it holds a GOP of at least ``gop_packets`` packets."""
        hub = self.hubs[camera]
        await until(lambda: len(hub.current_gop()) >= gop_packets, within_s, f"{camera} streaming")
        return hub


async def frame_rate(viewer: PythonViewer, frames: int) -> float:
    started, counted = time.monotonic(), viewer.frames
    await viewer.wait_frames(counted + frames, within_s=frames / FPS * 3)
    return frames / (time.monotonic() - started)


async def steady_frame_rate(viewer: PythonViewer, frames: int = 50) -> float:
    """The viewer's frame rate once any backlog (a cached GOP still being decoded) is behind it."""
    await until_async(lambda: frame_rate(viewer, 10), lambda rate: rate < 1.5 * FPS, 8, "a steady frame rate")
    return await frame_rate(viewer, frames)


async def until_async(measure: Callable[[], Any], good: Callable[[Any], bool], within_s: float, what: str) -> Any:
    deadline = time.monotonic() + within_s
    while not good(value := await measure()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s:g} s waiting for {what} (last: {value!r})")
    return value


@pytest.fixture
def cameras(tmp_path) -> AsyncIterator[Callable[..., Camera]]:
    started: list[Camera] = []

    def make(**options: Any) -> Camera:
        camera = Camera(log_path=tmp_path / f"camera-{len(started)}.log", fps=FPS, **options)
        started.append(camera)
        return camera.start()

    yield make
    for camera in started:
        camera.close()


@pytest.fixture
async def rig_factory() -> AsyncIterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(cameras: dict[str, tuple[Camera, dict[str, Any]]], **webrtc: Any) -> Rig:
        sections = {
            name: CameraSection(url=camera.url, stall_timeout_s=3, **extra) for name, (camera, extra) in cameras.items()
        }
        hubs = {name: CameraHub(name) for name in sections}
        sources = {name: CameraSource(name, section, None, hubs[name]) for name, section in sections.items()}
        for source in sources.values():
            source.start()
        settings = WebRtcSection(host_addresses=["127.0.0.1"], **webrtc)
        rig = Rig(LiveService(settings, sections, hubs), hubs, sources)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        for viewer in rig.viewers:
            await viewer.close()
        await rig.service.close()
        await asyncio.gather(*(source.stop() for source in rig.sources.values()))


# -- passthrough ---------------------------------------------------------------------------------------


@pytest.mark.timed
async def test_a_viewer_of_a_10_s_gop_camera_sees_the_camera_at_once_and_at_its_frame_rate(cameras, rig_factory):
    rig = rig_factory({"north": (cameras(gop_s=10), {})})
    # 1.6 s into the GOP: the next keyframe is more than 8 s away.
    hub = await rig.streaming("north", gop_packets=40)
    keyframe = hub.last_keyframe()
    cached = len(hub.current_gop())
    asked = time.monotonic()
    viewer, session_id = await rig.viewer("north")

    await viewer.wait_frames(1, within_s=3)
    assert viewer.first_frame_at - asked < 2.0
    assert hub.last_keyframe() is keyframe, "the picture came from the cached GOP, not from a new keyframe"
    assert looks_like_smpte(viewer.picture()), viewer.picture()

    # The cached GOP arrives at once (stamped as sent); then frames follow the camera's pace.
    await viewer.wait_frames(cached, within_s=3)
    assert await steady_frame_rate(viewer) == pytest.approx(FPS, rel=0.25)

    stats = rig.service.camera_stats("north")
    assert stats.viewers == 1 and stats.viewers_connected == 1
    assert stats.transcoding is False and stats.transcode is None
    assert stats.packets_sent > 90 and stats.bytes_sent > 10_000
    assert 0 < stats.time_to_first_frame_s < 1.0
    assert [s.id for s in rig.service.sessions("north")] == [session_id]
    assert await rig.service.close_session(session_id) is True
    assert rig.service.camera_stats("north").viewers == 0
    assert rig.service.camera_stats("north").packets_sent >= stats.packets_sent  # kept after the close


async def test_the_same_viewer_resumes_after_a_camera_reboot_with_another_resolution(cameras, rig_factory):
    camera = cameras(gop_s=1, width=640, height=360)
    rig = rig_factory({"north": (camera, {})})
    await rig.streaming("north")
    viewer, _ = await rig.viewer("north")
    await viewer.wait_frames(25, within_s=5)

    camera.stop()
    await until(lambda: rig.hubs["north"].stream is None, 10, "the source noticing the camera is gone")
    before = viewer.frames
    camera.width, camera.height = 480, 270
    camera.start()

    await viewer.wait_frames(before + 25, within_s=15)
    assert viewer.sizes[0] == (640, 360) and viewer.sizes[-1] == (480, 270)
    assert looks_like_smpte(viewer.picture())
    assert rig.service.camera_stats("north").viewers_connected == 1


# -- shared transcode ------------------------------------------------------------------------------------


async def test_an_h265_camera_is_transcoded_once_for_two_viewers(cameras, rig_factory):
    rig = rig_factory({"hevc": (cameras(codec="h265", gop_s=1), {})}, transcode_width=480)
    await rig.streaming("hevc")
    first, _ = await rig.viewer("hevc")
    second, _ = await rig.viewer("hevc")
    await asyncio.gather(first.wait_frames(25, within_s=8), second.wait_frames(25, within_s=8))

    assert first.sizes[-1] == (480, 270)
    assert looks_like_smpte(first.picture()) and looks_like_smpte(second.picture())
    stats = rig.service.camera_stats("hevc")
    assert stats.transcoding is True
    assert stats.transcoders_started == 1
    assert stats.transcode["encoders_opened"] == 1
    assert stats.transcode["keyframes_forced"] >= 1  # a keyframe when a viewer joins
    assert rig.service.totals()["transcoders"] == 1

    # A browser's picture-loss indication reaches the one encoder: a keyframe for everybody.
    forced = stats.transcode["keyframes_forced"]
    await asyncio.sleep(MIN_FORCED_KEYFRAME_INTERVAL_S)  # the encoder grants one forced keyframe per interval
    session = rig.service.sessions("hevc")[0]
    sender = session.pc.getTransceivers()[0].sender
    await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=sender._ssrc))
    await until(
        lambda: rig.service.camera_stats("hevc").transcode["keyframes_forced"] > forced, 2, "a forced keyframe"
    )
    assert rig.service.camera_stats("hevc").keyframe_requests >= 1

    for session in rig.service.sessions("hevc"):
        await rig.service.close_session(session.id)
    await until(lambda: not rig.service.camera_stats("hevc").transcoding, 5, "the transcoder stopping")


async def test_a_masked_camera_is_masked_in_the_live_picture(cameras, rig_factory):
    # The right half of the top half is a house front: black, also live.
    rig = rig_factory({"junction": (cameras(gop_s=1), {"privacy_masks": [[0.5, 0.0, 0.5, 0.5]]})})
    await rig.streaming("junction")
    viewer, _ = await rig.viewer("junction")
    await viewer.wait_frames(10, within_s=8)

    top = viewer.picture()["cells"][0]
    assert [lit(colour) for colour in top[:3]] == ["RGB", "RG", "GB"]  # grey, yellow, cyan bars still there
    assert all(max(colour) < 30 for colour in top[4:]), top  # the masked quarter is black
    assert rig.service.camera_stats("junction").transcoding is True


async def test_a_camera_sending_b_frames_is_switched_to_the_transcode(cameras, rig_factory, tmp_path):
    # Chromium cannot play B-frames sent as they come (it decodes the keyframes only); found in the
    # bitstream, they move the camera's viewers to the shared transcode on the same connection.
    clip = write_clip(tmp_path / "bframes.264", bframes=2)
    rig = rig_factory({"old": (cameras(file=clip), {})})
    await rig.streaming("old")
    viewer, _ = await rig.viewer("old")
    await until(lambda: rig.service.camera_stats("old").transcoding, 5, "the switch to the transcode")
    assert await steady_frame_rate(viewer) == pytest.approx(FPS, rel=0.3)
    assert viewer.sizes[-1] == (640, 360)
    stats = rig.service.camera_stats("old")
    assert stats.transcoding is True and stats.transcode["frames_encoded"] > 0


# -- refusals, limits, timeouts ------------------------------------------------------------------------


async def test_offers_are_refused_with_a_status_and_a_one_line_reason(cameras, rig_factory):
    rig = rig_factory({"north": (cameras(gop_s=1), {})}, max_viewers_per_camera=1, max_viewers_total=1)
    await rig.streaming("north")
    service = rig.service
    good = await PythonViewer().offer()

    async def refused(camera: str, sdp: str, **kwargs: Any) -> LiveError:
        with pytest.raises(LiveError) as caught:
            await service.offer(camera, sdp, **kwargs)
        assert "\n" not in caught.value.reason
        return caught.value

    assert (await refused("nowhere", good)).status == 404
    assert (await refused("north", "hello")).status == 400
    assert (await refused("north", "v=0\r\ns=-\r\n")).status == 400  # no video
    assert (await refused("north", good.replace("a=ice-pwd:", "a=x-nothing:"))).status == 400
    assert (await refused("north", good, session_id="a/b")).status == 400
    vp8 = PythonViewer(codecs=("video/VP8",))
    no_h264 = await refused("north", await vp8.offer())
    assert no_h264.status == 406 and "H.264" in no_h264.reason
    await vp8.close()

    viewer, session_id = await rig.viewer("north")
    full = await refused("north", await PythonViewer().offer())
    assert full.status == 503 and "maximum" in full.reason
    assert (await refused("north", good, session_id=session_id)).status in (409, 503)
    assert service.totals()["offers_refused"] == 8

    assert await service.close_session("no-such-session") is False
    assert await service.close_session(session_id) is True
    await rig.viewer("north")  # room again


async def test_a_viewer_that_never_connects_is_closed_after_the_connect_timeout(cameras, rig_factory):
    rig = rig_factory({"north": (cameras(gop_s=1), {})}, connect_timeout_s=1)
    await rig.streaming("north")
    silent = PythonViewer()
    rig.viewers.append(silent)
    await rig.service.offer("north", await silent.offer())  # the answer never reaches the viewer
    assert rig.service.camera_stats("north").viewers == 1
    await until(lambda: rig.service.camera_stats("north").viewers == 0, 5, "the session to time out")
    assert not rig.hubs["north"].subscriptions, "the viewer's subscription to the hub is gone"


# -- signaling ----------------------------------------------------------------------------------------


async def test_mqtt_offers_are_answered_or_ignored(cameras, rig_factory):
    rig = rig_factory({"north": (cameras(gop_s=1), {})})
    await rig.streaming("north")
    service = rig.service

    assert await handle_mqtt_offer(service, "north", b"\xff not json") is None
    assert await handle_mqtt_offer(service, "north", b'{"sdp": "v=0"}') is None  # no session id
    assert await handle_mqtt_offer(service, "north", b'{"session_id": "a/+/#", "sdp": "v=0"}') is None
    session_id, body = await handle_mqtt_offer(service, "north", b'{"session_id": "op-1"}')
    assert session_id == "op-1" and json.loads(body)["error"].startswith("400")
    _, body = await handle_mqtt_offer(service, "nowhere", b'{"session_id": "op-2", "sdp": "v=0"}')
    assert json.loads(body)["error"].startswith("404")

    viewer = PythonViewer()
    rig.viewers.append(viewer)
    offer = json.dumps({"session_id": "op-3", "sdp": await viewer.offer()}).encode()
    session_id, body = await handle_mqtt_offer(service, "north", offer)
    assert session_id == "op-3"
    await viewer.accept(json.loads(body)["sdp"])
    await viewer.wait_frames(10, within_s=5)
    assert await service.close_session("op-3") is True


async def test_whep_answers_201_with_a_location_and_deletes_the_session(cameras, rig_factory):
    rig = rig_factory({"north": (cameras(gop_s=1), {})})
    await rig.streaming("north")
    app = web.Application()
    add_routes(app, rig.service)
    async with TestClient(TestServer(app)) as client:
        viewer = PythonViewer()
        rig.viewers.append(viewer)
        offer = await viewer.offer()
        wrong_type = await client.post("/whep/north", data=offer, headers={"Content-Type": "text/plain"})
        assert wrong_type.status == 415
        malformed = await client.post("/whep/north", data="nonsense", headers={"Content-Type": "application/sdp"})
        assert malformed.status == 400 and (await malformed.text()).count("\n") == 1
        unknown = await client.post("/whep/south", data=offer, headers={"Content-Type": "application/sdp"})
        assert unknown.status == 404

        answer = await client.post("/whep/north", data=offer, headers={"Content-Type": "application/sdp"})
        assert answer.status == 201
        assert answer.content_type == "application/sdp"
        location = answer.headers["Location"]
        assert location.startswith("/whep/sessions/")
        await viewer.accept(await answer.text())
        await viewer.wait_frames(10, within_s=5)

        assert (await client.delete(location)).status == 200
        assert (await client.delete(location)).status == 404
        with contextlib.suppress(Exception):
            await viewer.close()
    assert rig.service.camera_stats("north").viewers == 0
