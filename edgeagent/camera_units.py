"""The agent's cameras of the moment, and the one place where each one starts and stops.

At start every configured camera goes through ``start``, at stop through ``stop_all``, and a
configuration reload (:mod:`edgeagent.reload`) stops and starts single cameras through the same two
doors, so a camera added, removed or changed touches nothing of the others. ``units`` is the very dict
that HTTP, MQTT and the health records read: a camera is known everywhere from the moment it starts.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from edgeagent import loops
from edgeagent.camera.source import CameraSource
from edgeagent.live.service import LiveService
from edgeagent.onvif.events import EventSink, spawn_link_tasks
from edgeagent.record.model import GapReason
from edgeagent.recordings import AgentRecordings
from edgeagent.unit import CameraUnit
from edgeagent.uplink.service import UplinkService


class CameraUnits:
    def __init__(
        self,
        tasks: loops.BackgroundTasks,
        on_state_change: Callable[[CameraSource], None],
        publish_snapshot: Callable[[CameraUnit], Awaitable[bool]],
        refresh_alarms: Callable[[CameraUnit], None],
        publish_event: Callable[[str, dict[str, object]], None] | None = None,  # ONVIF events: (camera, event)
    ) -> None:
        self.units: dict[str, CameraUnit] = {}
        self.live: LiveService | None = None  # set once the live view runs
        self.uplink: UplinkService | None = None  # set once the uplink runs (after the live view)
        self.recording: AgentRecordings | None = None  # set when the configuration records
        self._tasks = tasks
        self._on_state_change = on_state_change
        self._publish_snapshot = publish_snapshot
        self._refresh_alarms = refresh_alarms
        self._snapshot_tasks: dict[str, asyncio.Task[None]] = {}
        self._picture_tasks: dict[str, asyncio.Task[None]] = {}
        self._publish_event = publish_event
        self._onvif_tasks: dict[str, list[asyncio.Task[None]]] = {}

    def start(self, unit: CameraUnit) -> None:
        """Everything one camera takes part in: the state it publishes, live view, ingest, snapshots,
        picture checks, alarms and recording."""
        self.units[unit.name] = unit
        if self.live is not None:
            self.live.add_camera(unit.name, unit.camera.section, unit.camera.hub)
            if self.uplink is not None:
                self.uplink.add_camera(unit.name, self.live.feed(unit.name))
        unit.camera.source.on_state_change(self._on_state_change)
        self._refresh_alarms(unit)  # offline until the camera is online
        if unit.onvif is not None:  # before the camera: its first connect may ask for the stream URI
            unit.onvif.start()
            self._onvif_tasks[unit.name] = spawn_link_tasks(self._tasks, unit.onvif, self._event_sink(unit))
        unit.camera.start()
        if self.recording is not None:
            self.recording.add_camera(unit)
        interval = unit.camera.section.snapshot.interval_s
        publish = functools.partial(self._publish_snapshot, unit)
        task = self._tasks.spawn(loops.snapshots(interval, publish, unit.name), f"snapshots-{unit.name}")
        self._snapshot_tasks[unit.name] = task
        checked = functools.partial(self._refresh_alarms, unit)
        self._picture_tasks[unit.name] = self._tasks.spawn(loops.picture_checks(unit, checked), f"picture-{unit.name}")

    def _event_sink(self, unit: CameraUnit) -> EventSink | None:
        """Where the camera's ONVIF events go: MQTT, and the recording's bookmarks; None: not subscribed."""
        sinks: list[EventSink] = []
        if self._publish_event is not None:
            sinks.append(functools.partial(self._publish_event, unit.name))
        marks = self.recording.onvif_events(unit) if self.recording is not None else None
        if marks is not None:
            sinks.append(marks)
        if len(sinks) <= 1:
            return sinks[0] if sinks else None

        def each(event: dict[str, Any]) -> None:
            for sink in sinks:
                sink(event)

        return each

    async def stop(self, name: str, join_s: float, reason: str = "camera reconfigured") -> CameraUnit | None:
        """The reverse of ``start``: nothing of the camera keeps running, and nobody finds it any more
        (its viewers are closed with ``reason``)."""
        unit = self.units.pop(name, None)
        if unit is None:
            return None
        tasks = [task for task in (self._snapshot_tasks.pop(name, None), self._picture_tasks.pop(name, None)) if task]
        tasks += self._onvif_tasks.pop(name, [])
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.uplink is not None:
            await self.uplink.remove_camera(name)  # before its feed goes
        if self.live is not None:
            await self.live.remove_camera(name, reason)
        if self.recording is not None:  # taken out or changed: its recording ends here, a gap follows
            await self.recording.remove_camera(name, GapReason.RECORDING_DISABLED)
        await unit.camera.stop(join_s)
        if unit.onvif is not None:
            await unit.onvif.close()  # after the camera, whose connect may be asking it for the stream URI
        return unit

    async def stop_all(self, join_s: float) -> None:
        """Agent stop: the recorders close their segments (``agent stopped``), then the cameras' connections
        close in parallel (tasks and viewers end on their own)."""
        if self.recording is not None:
            recording = self.recording
            await asyncio.gather(*(recording.remove_camera(name, GapReason.AGENT_STOPPED) for name in self.units))
        await asyncio.gather(*(unit.camera.stop(join_s) for unit in self.units.values()))
        links = [unit.onvif for unit in self.units.values() if unit.onvif is not None]
        await asyncio.gather(*(link.close() for link in links))  # a PTZ move under way is stopped
