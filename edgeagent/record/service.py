"""Recording for the whole agent: one index, one retention, one recorder per recorded camera.

Wiring (the agent): ``service = RecordingService(config.recording, {name: camera.hub}, offline_reasons)``;
``await service.start()`` after the cameras started, ``await service.stop()`` before they stop;
``await service.astats()`` gives a ``RecordingStats`` per camera for health and MQTT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edgeagent.camera.hub import CameraHub
from edgeagent.record.growing import totals_with_growing
from edgeagent.record.index import RecordingIndex
from edgeagent.record.model import GapReason, Segment
from edgeagent.record.recorder import Recorder
from edgeagent.record.repair import camera_files, reindex, repair
from edgeagent.record.retention import Retention
from edgeagent.record.settings import RecordingSection

log = logging.getLogger(__name__)

INDEX_NAME = "index.sqlite3"  # inside recording.dir (also in edgeagent.record.commands)
RATE_MIN_S = 60.0  # a rate measured over less than this says little


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class RecordingStats:
    camera: str
    state: str  # recording, paused or off
    reason: str | None  # why paused or off (a GapReason value)
    oldest: datetime | None
    newest: datetime | None
    bytes: int  # stored for this camera
    bytes_written: int  # written by this camera's recorder since the agent started
    bytes_per_hour: float
    dropped: int  # packets the recorder lost because the disk was too slow
    disk_days: float | None  # days of video the disk holds at the current rate of all cameras
    endurance_used: float | None  # share of the card's rated endurance (endurance_tbw) written so far

    def to_json(self) -> dict[str, Any]:
        """The retained ``<base>/cameras/<cam>/recording`` message."""
        return {
            "state": self.state, "reason": self.reason, "oldest": _iso(self.oldest), "newest": _iso(self.newest),
            "bytes": self.bytes, "bytes_written": self.bytes_written, "bytes_per_hour": round(self.bytes_per_hour),
            "dropped": self.dropped,
            "disk_days": None if self.disk_days is None else round(self.disk_days, 2),
            "endurance_used": None if self.endurance_used is None else round(self.endurance_used, 6),
        }  # fmt: skip


class RecordingService:
    def __init__(
        self,
        settings: RecordingSection,
        hubs: dict[str, CameraHub],
        offline_reasons: dict[str, Callable[[], GapReason]] | None = None,
    ) -> None:
        # Nothing here touches the disk: the directory and the index are opened by ``start()``, in a thread.
        self.settings = settings.model_copy(update={"dir": settings.dir.absolute()})
        self._hubs = dict(hubs)
        self._reasons = offline_reasons or {}
        self._index: RecordingIndex | None = None
        self._retention: Retention | None = None
        self.recorders: dict[str, Recorder] = {}
        self.started_at = time.monotonic()
        self._callbacks: list[Callable[[str], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False  # the recorders run: a camera added from now on starts its own

    @property
    def index(self) -> RecordingIndex:
        """The recording index (for the HTTP routes and the CLI); there once ``start()`` returned."""
        if self._index is None:
            raise RuntimeError("the recording service is not started")
        return self._index

    @property
    def retention(self) -> Retention:
        if self._retention is None:
            raise RuntimeError("the recording service is not started")
        return self._retention

    def _prepare(self) -> None:
        """In a thread: open the index, rebuild it when it was lost, repair what a crash left open."""
        self.settings.dir.mkdir(parents=True, exist_ok=True)
        index_path = self.settings.dir / INDEX_NAME
        fresh = not index_path.exists()
        index = self._index = RecordingIndex(index_path)
        self._retention = Retention(self.settings, index)
        if fresh and any(camera_files(self.settings.dir).values()):
            done = reindex(index, self.settings.dir)
            log.warning("recording index was missing: rebuilt from %d segment files, %d gaps and %d bookmarks "
                        "from their journals", done.segments, done.gaps, done.bookmarks)  # fmt: skip
        repaired = repair(index, self.settings.dir)
        if repaired:
            log.warning("repaired %d segments left open by a crash", len(repaired))
        self._retention.check()
        self.recorders = {
            name: Recorder(name, hub, index, self._retention, self.settings, self._reasons.get(name))
            for name, hub in self._hubs.items()
        }

    def growing(self, camera: str) -> Segment | None:
        """The segment ``camera`` is writing, up to its last whole fragment (``edgeagent.record.growing``);
        cheap, no lock: fine on the event loop."""
        recorder = self.recorders.get(camera)
        return recorder.growing if recorder is not None else None

    def on_change(self, callback: Callable[[str], None]) -> None:
        """``callback(camera)`` on the event loop whenever a recorder's state or reason changes (publish the
        retained ``<base>/cameras/<cam>/recording`` then). Register before ``start()``."""
        self._callbacks.append(callback)

    def _changed(self, recorder: Recorder) -> None:  # in the writer thread
        if self._loop is not None:
            for callback in self._callbacks:
                with contextlib.suppress(RuntimeError):  # the loop is closing
                    self._loop.call_soon_threadsafe(callback, recorder.camera)

    def add_camera(self, name: str, hub: CameraHub, offline_reason: Callable[[], GapReason] | None = None) -> None:
        """Record one more camera (at start, or added by a configuration reload); before ``start()`` it only
        joins the cameras that ``start()`` records."""
        self._hubs[name] = hub
        if offline_reason is not None:
            self._reasons[name] = offline_reason
        if not self._started:
            return
        recorder = Recorder(name, hub, self.index, self.retention, self.settings, self._reasons.get(name))
        recorder.on_change(self._changed)
        self.recorders[name] = recorder
        recorder.start()

    async def remove_camera(self, name: str, reason: GapReason = GapReason.RECORDING_DISABLED) -> None:
        """Stop recording one camera; the gap from now on carries ``reason``."""
        self._hubs.pop(name, None)
        self._reasons.pop(name, None)
        recorder = self.recorders.pop(name, None)
        if recorder is not None:
            recorder.stop_reason = reason
            await recorder.stop()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._prepare)
        self.retention.start()
        for recorder in self.recorders.values():
            recorder.on_change(self._changed)
            recorder.start()
        self._started = True

    async def stop(self) -> None:
        self._started = False
        await asyncio.gather(*(recorder.stop() for recorder in self.recorders.values()))
        if self._retention is not None:
            await asyncio.to_thread(self._retention.stop)
        if self._index is not None:
            await asyncio.to_thread(self._index.close)

    # -- health -----------------------------------------------------------------------------------

    def _rate(self, recorder: Recorder) -> float:
        """Bytes per second this recorder writes."""
        elapsed = max(RATE_MIN_S, time.monotonic() - recorder.started_at)
        return recorder.bytes_written / elapsed

    def stats(self) -> dict[str, RecordingStats]:
        """Blocking (SQLite, statvfs): from the event loop use ``astats``. The segments being written count up
        to their last whole fragment (each taken before the index: see ``edgeagent.record.growing``)."""
        growing = {name: recorder.growing for name, recorder in self.recorders.items()}
        free, total = self.retention.disk()
        closed = {name: self.index.camera_totals(name) for name in self.recorders}
        totals = {name: totals_with_growing(*closed[name], growing[name]) for name in self.recorders}
        stored = self.index.total_bytes() + sum(totals[name][2] - closed[name][2] for name in self.recorders)
        capacity = stored + free - self.retention.min_free_bytes(total)
        rate = sum(self._rate(recorder) for recorder in self.recorders.values())
        disk_days = capacity / (rate * 86400) if rate > 0 else None
        tbw = self.settings.endurance_tbw
        endurance = self.index.written() / (tbw * 1e12) if tbw else None
        result = {}
        for name, recorder in self.recorders.items():
            oldest, newest, size = totals[name]
            result[name] = RecordingStats(
                name, recorder.state, recorder.reason, oldest, newest, size, recorder.bytes_written,
                self._rate(recorder) * 3600, recorder.dropped, disk_days, endurance,
            )  # fmt: skip
        return result

    async def astats(self) -> dict[str, RecordingStats]:
        return await asyncio.to_thread(self.stats)

    def alarms(self, stats: RecordingStats) -> list[str]:
        """What should raise an alarm for one camera: recording paused, or a disk that holds too few days."""
        found = []
        if stats.state == "paused" and stats.reason == "disk full":
            held = self.retention.held_for_offload
            found.append("recording paused: disk full (only locked video left)" if not held else
                         f"recording paused: disk full (only locked video and {held} bytes not yet offloaded left)")
        if stats.disk_days is not None and stats.disk_days < self.settings.alarm_below_days:
            found.append(f"the recording disk holds {stats.disk_days:.1f} days at the current rate "
                         f"(alarm below {self.settings.alarm_below_days:g})")  # fmt: skip
        return found
