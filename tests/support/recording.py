"""Recording under test, in-process: a real camera read by a real CameraSource into a hub, recorded by the
real RecordingService into real files; plus helpers that read those files back with PyAV and ffmpeg."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from edgeagent.camera.hub import CameraHub
from edgeagent.camera.source import CameraSource
from edgeagent.config import CameraSection
from edgeagent.record.index import RecordingIndex
from edgeagent.record.recorder import Recorder
from edgeagent.record.retention import Retention
from edgeagent.record.service import RecordingService
from edgeagent.record.settings import RecordingSection

_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="test-off-loop")


def blocking(function: Callable[..., Any], *args: Any) -> Any:
    """Call a blocking product API from a test's coroutine: it runs in another thread (the test waits for
    it, on purpose), so the product code itself is never on the event loop and blockbuster stays armed."""
    return _POOL.submit(function, *args).result()


class OffLoop:
    """The same object, each method call made through ``blocking``: for the index in a test's asserts."""

    def __init__(self, target: Any) -> None:
        self.target = target

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.target, name)
        if not callable(attribute):
            return attribute
        return lambda *args: blocking(attribute, *args)


class Recording:
    """``async with Recording(camera_url, dir, segment_s=4, ...) as rec``: recording runs inside."""

    def __init__(self, url: str | None, directory: Path, name: str = "north", **settings: Any) -> None:
        self.name = name
        settings.setdefault("segment_s", 4)
        settings.setdefault("min_free", "0%")
        settings.setdefault("retention_check_s", 0.5)
        self.settings = RecordingSection(dir=directory, **settings)
        self.hub = CameraHub(name)
        self.url = url
        self.source: CameraSource | None = None
        self.service = RecordingService(self.settings, {name: self.hub})
        self._reopened: RecordingIndex | None = None

    @property
    def index(self) -> Any:
        """The service's index while it runs, a fresh one on the same file after it stopped; each call off
        the event loop (``OffLoop``)."""
        return OffLoop(self._reopened or self.service.index)

    @property
    def recorder(self) -> Recorder:
        return self.service.recorders[self.name]

    @property
    def retention(self) -> Retention:
        return self.service.retention

    async def __aenter__(self) -> Recording:
        await self.service.start()
        if self.url is not None:
            section = CameraSection(url=self.url, stall_timeout_s=2, open_timeout_s=5)
            self.source = CameraSource(self.name, section, None, self.hub)
            self.source.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.source is not None:
            await self.source.stop()
        await self.service.stop()
        self._reopened = await asyncio.to_thread(RecordingIndex, self.service.index.path)

    async def recorded_s(self) -> float:
        spans = await asyncio.to_thread(self.index.spans, self.name)
        return sum((end - start).total_seconds() for start, end in spans)


async def until(predicate: Callable[[], Any], within: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``predicate`` (run in a thread: it may touch SQLite) until it is truthy."""
    deadline = time.monotonic() + within
    while True:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(interval)


def segment_files(root: Path, camera: str = "north") -> list[Path]:
    return sorted(root.glob(f"{camera}/*/*.mp4"))


def ffmpeg_errors(path: Path) -> str:
    """What ffmpeg's decoder complains about in a whole file (empty: it decodes cleanly)."""
    result = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    return result.stderr.strip()


def frame_times(path: Path, start: datetime) -> list[datetime]:
    """The wall-clock time of every decoded frame of a segment that starts at ``start``."""
    times = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        first: Fraction | None = None
        for frame in container.decode(stream):
            assert frame.pts is not None and stream.time_base is not None
            moment = frame.pts * stream.time_base
            first = moment if first is None else min(first, moment)
            times.append(moment)
    assert first is not None, f"{path} has no frames"
    return sorted(start + timedelta(seconds=float(moment - first)) for moment in times)


def probe(path: Path) -> dict[str, str]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
         "stream=codec_name,codec_tag_string,width,height,nb_read_frames", "-of", "default=nw=1", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return dict(line.split("=", 1) for line in result.stdout.split())
