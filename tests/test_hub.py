"""The camera hub: bounded per-consumer queues that drop the oldest, and the cached GOP."""

from __future__ import annotations

import asyncio

from edgeagent.camera.hub import CameraHub
from edgeagent.camera.packet import StreamInfo
from tests.support.packets import STREAM, packet, stream_info


def feed(hub: CameraHub, count: int, gop: int = 25, start: int = 0) -> None:
    for index in range(start, start + count):
        hub.publish(packet(index, keyframe=index % gop == 0))


async def test_slow_consumer_loses_its_oldest_packets_and_the_loss_is_counted() -> None:
    hub = CameraHub("north")
    slow = hub.subscribe("slow", maxsize=10, from_gop=False)
    fast = hub.subscribe("fast", maxsize=100, from_gop=False)
    feed(hub, 50)
    assert slow.qsize() == 10 and slow.dropped == 40
    first = await slow.get()
    assert first is not None and first.pts == 40 * 3600  # the newest ten remain
    assert fast.qsize() == 50 and fast.dropped == 0
    assert hub.drops_by_consumer() == {"slow": 40, "fast": 0}


async def test_resyncing_consumer_never_sees_a_broken_gop() -> None:
    hub = CameraHub("north")
    viewer = hub.subscribe("viewer", maxsize=10, from_gop=False, resync_on_drop=True)
    feed(hub, 13, gop=25, start=0)  # overflows inside the first GOP
    received = [viewer.get_nowait() for _ in range(viewer.qsize())]
    feed(hub, 18, gop=25, start=13)  # reaches the keyframe at 25, stays under the bound
    while (item := viewer.get_nowait()) is not None:
        received.append(item)
    indexes = [item.pts // 3600 for item in received]
    assert received and indexes[0] == 25 and received[0].keyframe
    assert indexes == list(range(25, 25 + len(indexes)))  # contiguous from the keyframe on
    assert viewer.dropped == 25


async def test_late_consumer_starts_with_the_current_gop() -> None:
    hub = CameraHub("north")
    feed(hub, 60, gop=25)
    late = hub.subscribe("late", maxsize=100)
    first = await late.get()
    assert first is not None and first.keyframe and first.pts == 50 * 3600
    assert late.qsize() == 9


async def test_gop_cache_is_dropped_when_the_stream_ends() -> None:
    hub = CameraHub("north")
    feed(hub, 30)
    hub.stream_ended()
    assert hub.current_gop() == [] and hub.last_keyframe() is None and hub.stream is None
    late = hub.subscribe("late")
    assert late.qsize() == 0


async def test_new_stream_resets_the_gop_and_notifies() -> None:
    hub = CameraHub("north")
    seen: list[StreamInfo | None] = []
    hub.on_stream_change(seen.append)
    feed(hub, 30)
    reconnected = stream_info("h264", 1280, 720, generation=2)
    hub.publish(packet(0, keyframe=True, stream=reconnected))
    assert seen == [STREAM, reconnected]
    assert len(hub.current_gop()) == 1


async def test_waiting_consumer_wakes_on_publish_and_on_close() -> None:
    hub = CameraHub("north")
    consumer = hub.subscribe("c")
    waiting = asyncio.ensure_future(consumer.get())
    await asyncio.sleep(0)
    hub.publish(packet(0, keyframe=True))
    assert (await asyncio.wait_for(waiting, 1)).keyframe
    waiting = asyncio.ensure_future(consumer.get())
    await asyncio.sleep(0)
    consumer.close()
    assert await asyncio.wait_for(waiting, 1) is None
    assert consumer not in hub.subscriptions


def test_rates_come_from_media_time_not_arrival_bursts() -> None:
    hub = CameraHub("north")
    for index in range(50):
        # all packets arrive at once (a demuxer's probe burst), yet they span 2 s of media
        hub.publish(packet(index, index % 25 == 0, size=1000, dts=None, arrival=5.0))
    assert abs(hub.fps() - 25.0) < 0.01
    assert abs(hub.bitrate_kbps() - 200.0) < 1.0  # 1000 bytes x 25 / s
    assert hub.gop_seconds() == 1.0


async def test_late_consumer_with_a_small_queue_starts_at_the_next_keyframe_not_mid_gop() -> None:
    hub = CameraHub("north")
    feed(hub, 60, gop=25)  # the cached GOP (50..59) is larger than the queue
    late = hub.subscribe("late", maxsize=5)
    assert late.qsize() == 0
    feed(hub, 20, gop=25, start=60)  # 75 is the next keyframe
    first = late.get_nowait()
    assert first is not None and first.keyframe and first.pts == 75 * 3600


def test_the_hub_is_prompt_while_any_consumer_needs_packets_at_once() -> None:
    hub = CameraHub("north")
    assert not hub.prompt  # nobody to hurry for
    recorder = hub.subscribe("recorder", prompt=False)
    assert not hub.prompt
    viewer = hub.subscribe("viewer")
    assert hub.prompt
    viewer.close()
    assert not hub.prompt  # the recorder alone takes its packets at its own pace
    feed(hub, 5)
    assert recorder.qsize() == 5
    recorder.close()
    assert not hub.prompt
