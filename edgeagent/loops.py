"""The agent's background work: a set that keeps every task referenced, and the periodic loops.

asyncio keeps only weak references to tasks, so a task nobody holds can be collected mid-run: every
background task of the agent is spawned through ``BackgroundTasks``, which also cancels them at stop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from edgeagent import systemd
from edgeagent.tasks import BackgroundTasks as BackgroundTasks  # it lived here; agent.py names it so
from edgeagent.unit import CameraUnit

log = logging.getLogger(__name__)

FIRST_PICTURE_RETRY_S = 0.5
PICTURE_QUEUE_PACKETS = 64  # about 2.5 s of packets at 25 fps while a keyframe is checked


async def every(interval_s: float, step: Callable[[], None], what: str) -> None:
    """``step()`` now and then every ``interval_s``; a failing step is logged and the loop goes on."""
    while True:
        try:
            step()
        except Exception:
            log.exception("%s failed", what)
        await asyncio.sleep(interval_s)


async def snapshots(interval_s: float, publish: Callable[[], Awaitable[bool]], camera: str) -> None:
    """A snapshot every interval; until the camera's first keyframe, look again every half second so
    the first snapshot is out as soon as there is a picture."""
    while True:
        published = False
        try:
            published = await publish()
        except Exception:
            log.exception("camera %s: snapshot failed", camera)
        await asyncio.sleep(interval_s if published else FIRST_PICTURE_RETRY_S)


async def picture_checks(unit: CameraUnit, checked: Callable[[], None]) -> None:
    """Every keyframe decoded for the picture checks, then ``checked()``: an alarm is raised within a few
    keyframes, not a few snapshot intervals. The decode is the snapshot's own (``Snapshotter`` keeps the
    picture of the latest keyframe), so the periodic snapshots cost nothing more."""
    subscription = unit.camera.hub.subscribe("picture", maxsize=PICTURE_QUEUE_PACKETS, from_gop=False)
    try:
        while (packet := await subscription.get()) is not None:
            if not packet.keyframe:
                continue
            try:
                await unit.snapshotter.snapshot()
            except Exception:
                log.exception("camera %s: picture check failed", unit.name)
            checked()
    finally:
        subscription.close()


async def watchdog(interval_s: float, problem: Callable[[], str | None] = lambda: None) -> None:
    """WATCHDOG=1 only while the event loop turns promptly and ``problem()`` finds nothing wrong (the
    agent can accept connections): a loop stuck in a blocking call, or an agent out of descriptors, gets
    restarted by systemd instead of silently serving nothing."""
    withholding = False
    while True:
        before = time.monotonic()
        await asyncio.sleep(interval_s)
        lag = time.monotonic() - before - interval_s
        trouble = problem()
        if lag >= interval_s:
            log.warning("event loop lagged %.1f s; withholding the watchdog ping", lag)
        elif trouble is not None:
            if not withholding:  # said once, not every interval
                log.warning("%s; withholding the watchdog ping", trouble)
            withholding = True
        else:
            if withholding:
                log.info("watchdog: the agent can accept connections again")
            withholding = False
            systemd.notify("WATCHDOG=1")
