"""Picture health on a real camera: the GStreamer simulator's road scene, its RTSP stream read by the
agent's CameraSource into a hub, and the Snapshotter decoding every keyframe (as the agent does for
snapshots), which runs the picture checks on it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from edgeagent.camera.hub import CameraHub
from edgeagent.camera.source import CameraSource
from edgeagent.config import CameraSection, SnapshotSection
from edgeagent.media.picture import PictureMeasures
from edgeagent.media.snapshot import Snapshotter
from tests.support.camera import Camera

# Frames already in the simulator's encoder and on the wire when a fault is commanded still show the old
# picture: a keyframe that arrives this soon after the command is not counted as one of the fault's.
IN_FLIGHT_S = 0.5


@dataclass
class Seen:
    arrival: float  # time.monotonic() of the keyframe
    active: list[str]
    measures: PictureMeasures | None


@dataclass
class Watched:
    """Every keyframe of one camera, decoded by its Snapshotter as it arrives, and the alarms after it."""

    camera: Camera
    snapshotter: Snapshotter
    seen: list[Seen] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def follow(self, hub: CameraHub) -> None:
        subscription = hub.subscribe("picture-test", maxsize=512, from_gop=False)
        try:
            while (packet := await subscription.get()) is not None:
                if not packet.keyframe:
                    continue
                snapshot = await self.snapshotter.snapshot()
                if snapshot is None or (self.seen and self.seen[-1].arrival == snapshot.keyframe_arrival):
                    continue  # a burst of keyframes (the stream's start): the newest one was decoded already
                picture = self.snapshotter.picture
                self.seen.append(Seen(snapshot.keyframe_arrival, picture.health.active, picture.measures))
                self._changed.set()
        finally:
            subscription.close()

    async def keyframes(self, count: int, after: float, within_s: float) -> list[Seen]:
        """The first ``count`` keyframes that arrived after ``after`` (time.monotonic())."""
        deadline = time.monotonic() + within_s
        while True:
            fresh = [seen for seen in self.seen if seen.arrival > after]
            if len(fresh) >= count:
                return fresh[:count]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(fresh)} of {count} keyframes in {within_s} s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)


@pytest.fixture
async def watch_camera(camera_factory: Callable[..., Camera]) -> AsyncIterator[Callable[..., Watched]]:
    tasks: list[asyncio.Task[None]] = []
    sources: list[CameraSource] = []

    def make(**options: Any) -> Watched:
        camera = camera_factory(scene="road", fps=10, gop_s=1.0, **options)
        hub = CameraHub("road")
        source = CameraSource("road", CameraSection(url=camera.url, stall_timeout_s=3), None, hub)
        snapshotter = Snapshotter("road", SnapshotSection(width=320), [], hub)
        watched = Watched(camera, snapshotter)
        source.start()
        sources.append(source)
        tasks.append(asyncio.create_task(watched.follow(hub)))
        return watched

    yield make
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await asyncio.gather(*(source.stop() for source in sources))


async def test_each_picture_fault_is_raised_within_three_keyframes_and_cleared_after_it_ends(
    watch_camera: Callable[..., Watched],
) -> None:
    watched = watch_camera(width=640, height=360)
    learned = await watched.keyframes(8, 0.0, within_s=30)  # the baseline and reference view are learned
    assert all(seen.active == [] for seen in learned), learned
    for fault, alarm in (("frozen", "frozen"), ("black", "blank"), ("blur", "blurred"), ("shift", "moved")):
        watched.camera.set_fault(fault)
        commanded = time.monotonic()
        during = await watched.keyframes(3, commanded + IN_FLIGHT_S, within_s=10)
        assert alarm in during[-1].active, (fault, [(s.active, s.measures) for s in during])
        raised_after = next(i for i, seen in enumerate(during) if alarm in seen.active) + 1
        print(f"{fault}: {alarm} raised on keyframe {raised_after} of the fault")
        assert all(set(seen.active) <= {alarm} for seen in during), (fault, during)

        watched.camera.set_fault(None)
        ended = time.monotonic()
        after = await watched.keyframes(4, ended + IN_FLIGHT_S, within_s=10)
        assert after[-1].active == [], (fault, [(s.active, s.measures) for s in after])
        assert all(set(seen.active) <= {alarm} for seen in after), (fault, after)


async def test_a_normal_moving_scene_raises_no_alarm_for_two_minutes(
    watch_camera: Callable[..., Watched],
) -> None:
    watched = watch_camera(width=320, height=180)
    seen = await watched.keyframes(120, 0.0, within_s=150)
    alarms = [(i, s.active) for i, s in enumerate(seen) if s.active]
    assert alarms == [], alarms
    measured = [s.measures for s in seen[1:] if s.measures is not None]
    assert len(measured) == 119
    # The scene really moves and was really checked: each keyframe differs from the one before it, and
    # once learned, each was compared with the reference view and the baseline sharpness.
    assert min(m.changed for m in measured if m.changed is not None) > 0.5
    assert all(m.similarity is not None and m.sharpness_ratio is not None for m in measured[10:])
    assert watched.snapshotter.picture.checks == 120
