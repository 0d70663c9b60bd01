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

import pytest

from edgeagent.health import as_json
from edgeagent.uplink.publisher import UplinkState
from tests.support.browser import looks_like_smpte, summarise_rgb
from tests.support.janus import JANUS_SECRET, Janus
from tests.support.uplink import UplinkRig, room_publishers
from tests.support.wait import wait_until_async as until

pytestmark = pytest.mark.skipif(
    shutil.which("janus") is None or os.geteuid() != 0, reason="needs Debian's janus and root (network namespace)"
)

ROOM = 4242
SECRET = JANUS_SECRET
DISPLAY = "cabinet-17/north"
WINDOW_S = 4.0  # bytes are counted over this long, with 1 and with 5 viewers


@pytest.fixture
def rig_factory(janus: Janus, uplink_rig):  # noqa: ANN001, ANN201 - janus first: it outlives the rigs
    """``await rig_factory(secret=..., **uplink)``: camera north published (on request) into Janus's ROOM."""

    async def make(secret: str = SECRET, **uplink) -> UplinkRig:  # noqa: ANN003
        return await uplink_rig(janus, secret, kind="janus", url=janus.url, room=ROOM, **uplink)

    return make


async def _sent_over(rig: UplinkRig, seconds: float) -> dict[str, float]:
    """Per second over ``seconds``: bytes on the cabinet's link, what aiortc counted (datagrams to UDP, their
    count, RTP payload), bytes from the camera and to the operators."""
    link, operators = rig.janus.netns.uplink, rig.janus.netns.operators

    async def read() -> tuple[float, ...]:
        sent = await rig.publisher.measure()
        return (time.monotonic(), link.host_counter("tx_bytes"), sent.bytes, sent.packets, sent.payload_bytes,
                rig.hub.bytes_total, operators.host_counter("rx_bytes"))  # fmt: skip

    start = await read()
    await asyncio.sleep(seconds)  # a measuring window, not a wait for an event
    end = await read()
    span = end[0] - start[0]
    names = ("uplink_link", "uplink_datagrams", "uplink_packets", "uplink_rtp_payload", "camera", "to_operators")
    return {name: (b - a) / span for name, a, b in zip(names, start[1:], end[1:], strict=True)}


async def test_five_centre_viewers_decode_the_camera_and_the_cabinet_sends_one_copy(rig_factory):
    rig = await rig_factory()
    rig.uplink.request("north", "start")
    await rig.published()

    first = await rig.viewer(ROOM, DISPLAY)
    await first.wait_frames(25, within_s=15)
    one = await _sent_over(rig, WINDOW_S)

    others = [await rig.viewer(ROOM, DISPLAY) for _ in range(4)]
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
    # What the uplink reports as sent is what the link carried: its datagrams plus UDP, IP and Ethernet
    # headers (8 + 20 + 14 bytes each); the rest of the link is signaling and ICE consent checks.
    framed = five["uplink_datagrams"] + 42 * five["uplink_packets"]
    assert framed == pytest.approx(five["uplink_link"], rel=0.03), (framed, five["uplink_link"])
    assert rig.publisher.publications == 1


async def test_a_camera_reboot_resumes_the_picture_on_the_same_publisher(rig_factory):
    rig = await rig_factory()
    rig.uplink.request("north", "start")
    await rig.published()
    viewer = await rig.viewer(ROOM, DISPLAY)
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
    health = rig.health()
    assert (health.camera_restarts, health.server_restarts) == (1, 0), health
    assert looks_like_smpte(summarise_rgb(viewer.last_frame.to_ndarray(format="rgb24")))


async def test_after_a_janus_restart_the_camera_is_published_again(rig_factory):
    rig = await rig_factory()
    rig.uplink.request("north", "start")
    await rig.published()
    first = await rig.viewer(ROOM, DISPLAY)
    await first.wait_frames(10, within_s=15)

    killed = time.monotonic()
    rig.janus.restart()  # SIGKILL, then a new Janus on the same ports: every session is gone
    assert rig.janus.ready_at is not None
    await rig.published(publications=2, within_s=30)
    republished_s = time.monotonic() - rig.janus.ready_at
    since_kill_s = time.monotonic() - killed
    viewer = await rig.viewer(ROOM, DISPLAY)
    await viewer.wait_frames(25, within_s=15)

    print(f"\npublished again {republished_s:.2f} s after Janus was back, {since_kill_s:.2f} s after the kill")
    assert rig.publisher.last_recovery_s is not None and rig.publisher.last_recovery_s < 30
    health = rig.health()
    assert (health.server_restarts, health.camera_restarts, health.publishes_connected) == (1, 0, 2), health


async def test_an_on_demand_uplink_stops_by_itself_idle_s_after_the_last_start_and_leaves_the_room(rig_factory):
    rig = await rig_factory(idle_s=3)
    rig.uplink.request("north", "start")
    await rig.published()
    watcher = rig.watcher(ROOM)
    await room_publishers(watcher, DISPLAY)
    renewed = time.monotonic()
    rig.uplink.request("north", "start")  # the centre still watches: the lease runs from here
    await until(lambda: rig.publisher.state == UplinkState.STOPPED, 10, "the idle stop")
    assert time.monotonic() - renewed >= 2.9
    assert rig.publisher.publications == 1, "the renewal did not publish a second time"
    await room_publishers(watcher, DISPLAY, present=False, within_s=5)


async def test_a_stop_and_an_immediate_start_leave_one_publisher_in_the_room(rig_factory):
    rig = await rig_factory()
    rig.uplink.request("north", "start")
    await rig.published()
    rig.uplink.request("north", "stop")
    rig.uplink.request("north", "start")  # a flapping centre: the new publication waits out the gap
    await rig.published(publications=2)
    watcher = rig.watcher(ROOM)
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
    health = rig.health()
    assert (health.wanted, health.publishing, health.reason) == (True, False, "refused"), health


async def test_metrics_show_the_publication_its_bytes_growing_and_why_it_stopped_when_janus_is_gone(rig_factory):
    rig = await rig_factory(width=320, height=180, idle_s=60)
    rig.uplink.request("north", "start")
    await rig.published()
    publishing = ("edgeagent_uplink_publishing", frozenset({("camera", "north"), ("kind", "janus")}))
    sent = ("edgeagent_uplink_bytes_sent_total", frozenset({("camera", "north")}))
    assert rig.metrics()[publishing] == 1
    first = await until(lambda: rig.metrics()[sent], 5, "bytes sent")
    await until(lambda: rig.metrics()[sent] > first, 5, "the bytes sent growing")
    document = as_json(rig.health())
    assert document["state"] == "publishing" and document["kind"] == "janus" and document["reason"] is None, document
    # The lease runs from the start request: what is left and what has passed make idle_s.
    assert 0 < document["since_start_request_s"] < 10, document
    assert document["idle_stop_in_s"] + document["since_start_request_s"] == pytest.approx(60, abs=0.2), document
    assert document["payload_bytes_sent"] > 0 and document["packets_sent"] > 0

    rig.janus.kill()
    killed = time.monotonic()
    await until(lambda: rig.metrics()[publishing] == 0, 10, "publishing 0")
    stopped_s = time.monotonic() - killed
    unreachable = ("edgeagent_uplink_down_reason", frozenset({("camera", "north"), ("reason", "unreachable")}))
    await until(lambda: rig.metrics()[unreachable] == 1, 10, "the reason in the metrics")
    reason_s = time.monotonic() - killed
    after = rig.metrics()
    assert after[publishing] == 0 and after[("edgeagent_uplink_wanted", frozenset({("camera", "north")}))] == 1
    assert sum(value for (name, _), value in after.items() if name == "edgeagent_uplink_down_reason") == 1
    assert after[("edgeagent_uplink_restarts_total", frozenset({("camera", "north"), ("cause", "server")}))] == 1
    document = as_json(rig.health())
    print(f"\nJanus killed: publishing 0 after {stopped_s:.2f} s, reason {document['reason']} after {reason_s:.2f} s,"
          f" last_error {document['last_error']!r}")  # fmt: skip
    assert document["reason"] == "unreachable" and "janus" in document["last_error"], document
    text = str(document) + str(after)
    assert SECRET not in text and rig.janus.url not in text and "http://" not in text
