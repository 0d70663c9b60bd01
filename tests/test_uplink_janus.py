"""The uplink into a real Janus VideoRoom (Debian's Janus in a network namespace of its own).

The publisher runs in-process with a real simulated camera, its RTSP source and hub; the centre's
operators are aiortc subscribers through Janus that decode what they get. The cabinet's link is a veth
pair whose host-side counters measure every byte the cabinet sends to the centre.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from edgeagent.camera.hub import CameraHub
from edgeagent.camera.source import CameraSource
from edgeagent.config import CameraSection, WebRtcSection
from edgeagent.live.service import LiveService
from edgeagent.uplink.publisher import UplinkState
from edgeagent.uplink.service import UplinkService
from edgeagent.uplink.settings import UplinkSection
from tests.support.browser import looks_like_smpte, summarise_rgb
from tests.support.camera import Camera
from tests.support.janus import JANUS_SECRET, Janus, JanusViewer

pytestmark = pytest.mark.skipif(
    shutil.which("janus") is None or os.geteuid() != 0, reason="needs Debian's janus and root (network namespace)"
)

ROOM = 4242
SECRET = JANUS_SECRET
DISPLAY = "cabinet-17/north"
WINDOW_S = 4.0  # bytes are counted over this long, with 1 and with 5 viewers


async def until(probe: Callable[[], Any], within_s: float, what: str) -> Any:
    deadline = time.monotonic() + within_s
    while not (result := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s:g} s waiting for {what}")
        await asyncio.sleep(0.05)
    return result


@dataclass
class Rig:
    janus: Janus
    camera: Camera
    hub: CameraHub
    source: CameraSource
    live: LiveService
    uplink: UplinkService
    viewers: list[JanusViewer] = field(default_factory=list)

    @property
    def publisher(self):  # noqa: ANN201
        return self.uplink.publishers["north"]

    async def published(self, publications: int = 1, within_s: float = 20) -> None:
        try:
            await until(
                lambda: self.publisher.publications >= publications and self.publisher.state == UplinkState.PUBLISHING,
                within_s,
                f"publication {publications}",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {self.publisher.status()}") from None

    async def viewer(self) -> JanusViewer:
        viewer = JanusViewer(self.janus, ROOM)
        self.viewers.append(viewer)
        feed = await _feed_of(viewer, DISPLAY)
        await viewer.subscribe(feed)
        return viewer


async def _feed_of(viewer: JanusViewer, display: str, within_s: float = 10) -> int:
    deadline = time.monotonic() + within_s
    while True:
        publishers = await viewer.publishers()
        if display in publishers:
            return publishers[display]
        if time.monotonic() > deadline:
            raise AssertionError(f"{display} not in the room: {publishers}")
        await asyncio.sleep(0.1)


@pytest.fixture
async def rig_factory(janus: Janus, tmp_path: Path) -> AsyncIterator[Callable[..., Rig]]:
    rigs: list[Rig] = []
    cameras: list[Camera] = []

    async def make(secret: str = SECRET, **uplink: Any) -> Rig:
        camera = Camera(log_path=tmp_path / f"camera{len(cameras)}.log", fps=25, gop_s=1, width=640, height=360)
        cameras.append(camera.start())
        token = tmp_path / "janus-secret"
        token.write_text(secret)
        token.chmod(0o600)
        section = CameraSection(url=camera.url, stall_timeout_s=3)
        hub = CameraHub("north")
        source = CameraSource("north", section, None, hub)
        source.start()
        webrtc = WebRtcSection(host_addresses=[janus.netns.uplink.host_ip])
        live = LiveService(webrtc, {"north": section}, {"north": hub})
        settings = UplinkSection(kind="janus", url=janus.url, room=ROOM, token_file=token, **uplink)
        service = UplinkService(settings, webrtc, "cabinet-17", {"north": live.feed("north")})
        rig = Rig(janus, camera, hub, source, live, service)
        rigs.append(rig)
        await service.start()
        return rig

    yield make
    for rig in rigs:
        for viewer in rig.viewers:
            await viewer.close()
        await rig.uplink.close()
        await rig.live.close()
        await rig.source.stop()
    for camera in cameras:
        camera.close()


async def _sent_over(rig: Rig, seconds: float) -> dict[str, float]:
    """Bytes per second over ``seconds``: on the cabinet's link, in RTP payload, from the camera, to operators."""
    link, operators = rig.janus.netns.uplink, rig.janus.netns.operators
    start = (
        time.monotonic(),
        link.host_counter("tx_bytes"),
        await rig.publisher.rtp_bytes_sent(),
        rig.hub.bytes_total,
        operators.host_counter("rx_bytes"),
    )
    await asyncio.sleep(seconds)  # a measuring window, not a wait for an event
    end = (
        time.monotonic(),
        link.host_counter("tx_bytes"),
        await rig.publisher.rtp_bytes_sent(),
        rig.hub.bytes_total,
        operators.host_counter("rx_bytes"),
    )
    span = end[0] - start[0]
    names = ("uplink_link", "uplink_rtp_payload", "camera", "to_operators")
    return {name: (b - a) / span for name, a, b in zip(names, start[1:], end[1:], strict=True)}


async def test_five_centre_viewers_decode_the_camera_and_the_cabinet_sends_one_copy(rig_factory):
    rig = await rig_factory()
    rig.uplink.request("north", "start")
    await rig.published()

    first = await rig.viewer()
    await first.wait_frames(25, within_s=15)
    one = await _sent_over(rig, WINDOW_S)

    others = [await rig.viewer() for _ in range(4)]
    await asyncio.gather(*(viewer.wait_frames(25, within_s=15) for viewer in others))
    five = await _sent_over(rig, WINDOW_S)

    for viewer in [first, *others]:
        assert viewer.sizes[-1] == (640, 360)
        assert looks_like_smpte(summarise_rgb(viewer.last_frame.to_ndarray(format="rgb24")))
    print(f"\nuplink bytes/s with 1 viewer: {one}\nuplink bytes/s with 5 viewers: {five}")
    # One copy: the cabinet's link carries the same with five viewers as with one, about the camera's own
    # bitrate plus RTP/SRTP/UDP/IP headers, while the centre's side carries five.
    assert five["uplink_link"] == pytest.approx(one["uplink_link"], rel=0.3)
    assert five["uplink_rtp_payload"] == pytest.approx(one["uplink_rtp_payload"], rel=0.3)
    assert 0.8 * five["camera"] < five["uplink_link"] < 1.5 * five["camera"]
    assert five["to_operators"] > 3.5 * one["to_operators"]
    assert rig.publisher.publications == 1


async def test_a_camera_reboot_resumes_the_picture_on_the_same_publisher(rig_factory):
    rig = await rig_factory()
    rig.uplink.request("north", "start")
    await rig.published()
    viewer = await rig.viewer()
    await viewer.wait_frames(25, within_s=15)
    pc = rig.publisher.pc

    rig.camera.stop()
    await until(lambda: rig.hub.stream is None, 10, "the source noticing the camera is gone")
    before = viewer.frames
    rig.camera.start()
    restarted = time.monotonic()
    await viewer.wait_frames(before + 1, within_s=15)
    resumed_s = time.monotonic() - restarted
    await viewer.wait_frames(before + 25, within_s=10)

    print(f"\npicture resumed {resumed_s:.2f} s after the camera was back")
    assert rig.publisher.pc is pc, "the same peer connection carried the picture through the reboot"
    assert rig.publisher.publications == 1 and rig.publisher.state == UplinkState.PUBLISHING
    assert looks_like_smpte(summarise_rgb(viewer.last_frame.to_ndarray(format="rgb24")))


async def test_after_a_janus_restart_the_camera_is_published_again(rig_factory):
    rig = await rig_factory()
    rig.uplink.request("north", "start")
    await rig.published()
    first = await rig.viewer()
    await first.wait_frames(10, within_s=15)

    killed = time.monotonic()
    rig.janus.restart()  # SIGKILL, then a new Janus on the same ports: every session is gone
    assert rig.janus.ready_at is not None
    await rig.published(publications=2, within_s=30)
    republished_s = time.monotonic() - rig.janus.ready_at
    since_kill_s = time.monotonic() - killed
    viewer = await rig.viewer()
    await viewer.wait_frames(25, within_s=15)

    print(f"\npublished again {republished_s:.2f} s after Janus was back, {since_kill_s:.2f} s after the kill")
    assert rig.publisher.last_recovery_s is not None and rig.publisher.last_recovery_s < 30


async def test_an_on_demand_uplink_stops_by_itself_idle_s_after_the_last_start_and_leaves_the_room(rig_factory):
    rig = await rig_factory(idle_s=3)
    rig.uplink.request("north", "start")
    await rig.published()
    watcher = JanusViewer(rig.janus, ROOM)
    rig.viewers.append(watcher)
    await _feed_of(watcher, DISPLAY)
    renewed = time.monotonic()
    rig.uplink.request("north", "start")  # the centre still watches: the lease runs from here
    await until(lambda: rig.publisher.state == UplinkState.STOPPED, 10, "the idle stop")
    assert time.monotonic() - renewed >= 2.9
    assert rig.publisher.publications == 1, "the renewal did not publish a second time"
    deadline = time.monotonic() + 5
    while DISPLAY in await watcher.publishers():
        assert time.monotonic() < deadline, "the publisher is still in the room"
        await asyncio.sleep(0.1)


async def test_a_stop_and_an_immediate_start_leave_one_publisher_in_the_room(rig_factory):
    rig = await rig_factory()
    rig.uplink.request("north", "start")
    await rig.published()
    rig.uplink.request("north", "stop")
    rig.uplink.request("north", "start")  # a flapping centre: the new publication waits out the gap
    await rig.published(publications=2)
    watcher = JanusViewer(rig.janus, ROOM)
    rig.viewers.append(watcher)
    publishers = await watcher.publishers()
    assert list(publishers) == [DISPLAY], publishers
    await watcher.subscribe(publishers[DISPLAY])
    await watcher.wait_frames(25, within_s=15)


async def test_a_wrong_api_secret_is_reported_and_retried_not_published(rig_factory):
    rig = await rig_factory(secret="not-the-secret-at-all")
    rig.uplink.request("north", "start")
    await until(lambda: rig.publisher.last_error, 10, "an error")
    assert "Unauthorized" in rig.publisher.last_error or "403" in rig.publisher.last_error, rig.publisher.last_error
    assert rig.publisher.publications == 0
    assert SECRET not in rig.publisher.last_error and "not-the-secret" not in rig.publisher.last_error
