"""(8) Export: a 10-minute signed export and a clip cut from recorded segments, beside ``ffmpeg -ss -to -c copy``.

The recording is the standard camera clip (1080p30, 4 Mbit/s H.264, 2 s GOP) looped without re-encoding
into fragmented-MP4 segments of 60 s, as the recorder writes them (11 minutes). edgeagent cuts
``[30.5 s, 630.5 s)`` (a start between keyframes) three ways: the clip alone (``write_clip``), the whole
export (every source segment hashed again against the index, the clip, its SHA-256, the signed manifest,
in a zip), and over HTTP (time to the first byte of ``clip.mp4`` and of ``export.zip`` on 127.0.0.1).
ffmpeg does the same cut with its concat demuxer, to a file (speed) and as fragmented MP4 to a pipe
(time to the first byte). The files sit in the page cache for both (each is read once before timing).
"""

from __future__ import annotations

import asyncio
import http.client
import resource
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.clips import camera_clip
from benchmarks.figures import fmt, ratio, summary
from benchmarks.settings import WORK, Settings

SPEED_TARGET = 200.0
TTFB_TARGET_S = 0.3
T0 = datetime(2026, 12, 1, 8, 0, 0, tzinfo=UTC)
TOKEN = "benchmark-token-0123456789abcdef"
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"


@dataclass
class Recording:
    segments: list[Any] = field(default_factory=list)

    def segments_in(self, camera: str, start: datetime, end: datetime) -> list[Any]:
        return [s for s in self.segments if s.end > start and s.start < end]


class _Index:
    """The index calls the HTTP routes make, over the benchmark's segments."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording

    def segments(self, camera: str, start: datetime, end: datetime) -> list[Any]:
        return self.recording.segments_in(camera, start, end)

    def gaps(self, camera: str, start: datetime, end: datetime) -> list[Any]:
        return []

    def spans(self, camera: str, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        return []

    def add_lock(self, camera: str, start: datetime, end: datetime, reason: str) -> Any:
        raise NotImplementedError

    def locks(self, camera: str) -> list[Any]:
        return []

    def remove_lock(self, lock_id: str) -> bool:
        return False

    def bookmarks(self, camera: str, start: datetime, end: datetime, limit: int) -> list[Any]:
        return []


def record(settings: Settings, seconds: int, segment_s: int) -> tuple[Path, Recording]:
    import hashlib

    from edgeagent.record.model import Segment

    clip = camera_clip(settings)
    source = clip.make(settings)
    directory = WORK / f"recording_{clip.name}_{seconds}s_{segment_s}s"
    base = directory / "base.mp4"  # raw H.264 cannot be looped by ffmpeg; an MP4 of it can
    remux = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-fflags", "+genpts", "-r", str(clip.fps),
             "-i", str(source), "-c", "copy", str(base)]
    argv = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", str(base),
            "-t", str(seconds), "-c", "copy", "-f", "segment", "-segment_time", str(segment_s),
            "-reset_timestamps", "1", "-segment_format", "mp4", "-segment_format_options", f"movflags={MOVFLAGS}",
            str(directory / "seg%04d.mp4")]
    settings.record(remux)
    settings.record(argv)
    if not (directory / "done").exists():
        directory.mkdir(parents=True, exist_ok=True)
        settings.log(f"recording {seconds} s into {segment_s} s segments")
        subprocess.run(remux, check=True)
        subprocess.run(argv, check=True)
        (directory / "done").touch()
    if len(list(directory.glob("seg*.mp4"))) != seconds // segment_s:
        raise RuntimeError(f"expected {seconds // segment_s} segments in {directory}")
    recording, previous = Recording(), None
    for number, path in enumerate(sorted(directory.glob("seg*.mp4"))):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()  # also warms the page cache
        start = T0 + timedelta(seconds=number * segment_s)
        recording.segments.append(Segment("bench", path, start, start + timedelta(seconds=segment_s),
                                          path.stat().st_size, "h264", clip.width, clip.height, digest, previous))
        previous = digest
    return directory, recording


class _PeakRss:
    """The process's peak RSS growth over a block, sampled every 10 ms (the clip streams: it stays flat)."""

    def __enter__(self) -> _PeakRss:
        import psutil

        self._process = psutil.Process()
        self.base = self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def edgeagent_cut(recording: Recording, start_s: float, length_s: float, out: Path, export: bool) -> dict[str, float]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edgeagent.record.clip import plan_clip, write_clip
    from edgeagent.record.export import write_export

    start, end = T0 + timedelta(seconds=start_s), T0 + timedelta(seconds=start_s + length_s)
    key = Ed25519PrivateKey.generate()
    cpu0, wall0 = _cpu(), time.perf_counter()
    with _PeakRss() as memory:
        plan = plan_clip("bench", recording.segments_in("bench", start, end), start, end)
        with out.open("wb") as file:
            if export:
                write_export(plan, file, key, "bench")
            else:
                write_clip(plan, file)
    wall, cpu = time.perf_counter() - wall0, _cpu() - cpu0
    return {"wall_s": wall, "speed": length_s / wall, "cpu_pct": 100 * cpu / wall, "bytes": out.stat().st_size,
            "rss_growth_mb": memory.growth_mb}


def ffmpeg_cut(settings: Settings, directory: Path, recording: Recording, start_s: float, length_s: float,
               out: Path) -> dict[str, float]:
    listing = directory / "concat.txt"
    listing.write_text("".join(f"file '{s.path.name}'\n" for s in recording.segments))
    argv = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-ss", f"{start_s:g}",
            "-to", f"{start_s + length_s:g}", "-i", str(listing), "-c", "copy", str(out)]
    settings.record(argv)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall0 = time.perf_counter()
    subprocess.run(argv, check=True)
    wall = time.perf_counter() - wall0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "speed": length_s / wall, "cpu_pct": 100 * cpu / wall, "bytes": out.stat().st_size,
            "rss_mb": after.ru_maxrss / 1024}  # the largest child so far: every ffmpeg run here is alike


def ffmpeg_ttfb(settings: Settings, directory: Path, start_s: float, length_s: float) -> float:
    argv = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "concat", "-safe", "0", "-ss", f"{start_s:g}",
            "-to", f"{start_s + length_s:g}", "-i", str(directory / "concat.txt"), "-c", "copy", "-f", "mp4",
            "-movflags", MOVFLAGS, "pipe:1"]
    settings.record(argv)
    wall0 = time.perf_counter()
    with subprocess.Popen(argv, stdout=subprocess.PIPE) as process:
        assert process.stdout is not None
        process.stdout.read(1)
        first = time.perf_counter() - wall0
        process.kill()
    return first


class _Server:
    def __init__(self, recording: Recording) -> None:
        from aiohttp import web
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from edgeagent.publish.recordings_http import RecordingRoutes, RecordingsHttpSettings, add_routes

        def authorized(request: web.Request) -> bool:
            return request.headers.get("Authorization") == f"Bearer {TOKEN}"

        self.app = web.Application()
        add_routes(self.app, RecordingRoutes(_Index(recording), ["bench"], Ed25519PrivateKey.generate(), "bench",
                                             authorized, RecordingsHttpSettings(max_clip_s=3600)))
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from aiohttp import web

        asyncio.set_event_loop(self.loop)
        runner = web.AppRunner(self.app)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = runner.addresses[0][1]
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())

    def __enter__(self) -> _Server:
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def ttfb(self, route: str, start_s: float, length_s: float) -> tuple[float, float]:
        """Seconds to the first body byte, and to the last."""
        from edgeagent.record.times import rfc3339

        start, end = T0 + timedelta(seconds=start_s), T0 + timedelta(seconds=start_s + length_s)
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        wall0 = time.perf_counter()
        connection.request("GET", f"/recordings/bench/{route}?start={rfc3339(start)}&end={rfc3339(end)}",
                           headers={"Authorization": f"Bearer {TOKEN}"})
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"{route}: {response.status} {response.read()[:200]!r}")
        response.read(1)
        first = time.perf_counter() - wall0
        while response.read(1 << 20):
            pass
        last = time.perf_counter() - wall0
        connection.close()
        return first, last


def run(settings: Settings) -> dict[str, Any]:
    seconds, segment_s, start_s, length_s = (40, 10, 3.5, 30.0) if settings.quick else (660, 60, 30.5, 600.0)
    directory, recording = record(settings, seconds, segment_s)
    out = WORK / "export-out"
    out.mkdir(parents=True, exist_ok=True)
    samples: dict[str, list[dict[str, float]]] = {"clip": [], "export": [], "ffmpeg": []}
    ttfb: dict[str, list[float]] = {"clip.mp4": [], "export.zip": [], "ffmpeg": []}
    totals: dict[str, list[float]] = {"clip.mp4": [], "export.zip": []}
    reps = max(1, settings.reps)
    with _Server(recording) as server:
        for rep in range(reps):
            samples["clip"].append(edgeagent_cut(recording, start_s, length_s, out / "clip.mp4", export=False))
            samples["export"].append(edgeagent_cut(recording, start_s, length_s, out / "export.zip", export=True))
            samples["ffmpeg"].append(ffmpeg_cut(settings, directory, recording, start_s, length_s, out / "ff.mp4"))
            for route in ("clip.mp4", "export.zip"):
                first_s, last_s = server.ttfb(route, start_s, length_s)
                ttfb[route].append(first_s)
                totals[route].append(last_s)
            ttfb["ffmpeg"].append(ffmpeg_ttfb(settings, directory, start_s, length_s))
            settings.log(f"export rep {rep + 1}/{reps}: clip {samples['clip'][-1]['speed']:.0f}x, export "
                         f"{samples['export'][-1]['speed']:.0f}x, ffmpeg {samples['ffmpeg'][-1]['speed']:.0f}x; "
                         f"first byte clip {ttfb['clip.mp4'][-1] * 1000:.0f} ms, "
                         f"ffmpeg {ttfb['ffmpeg'][-1] * 1000:.0f} ms")

    speeds = {k: summary(r["speed"] for r in v) for k, v in samples.items()}
    memory = {"clip": summary(r["rss_growth_mb"] for r in samples["clip"]),
              "export": summary(r["rss_growth_mb"] for r in samples["export"]),
              "ffmpeg": summary(r["rss_mb"] for r in samples["ffmpeg"])}
    cpus = {k: summary(r["cpu_pct"] for r in v) for k, v in samples.items()}
    walls = {k: summary(r["wall_s"] for r in v) for k, v in samples.items()}
    first = {k: summary(v) for k, v in ttfb.items()}
    over_http = {k: summary(length_s / t for t in v) for k, v in totals.items()}
    met = (speeds["export"]["median"] >= SPEED_TARGET and first["clip.mp4"]["median"] < TTFB_TARGET_S)
    rows = [
        ["edgeagent clip (write_clip to a file)", fmt(walls["clip"], 3), fmt(speeds["clip"], 0), fmt(cpus["clip"], 0),
         fmt(memory["clip"], 1), fmt(ratio(speeds["clip"]["median"], speeds["ffmpeg"]["median"]), 2), "–"],
        ["edgeagent export (re-hash segments, clip, sign, zip)", fmt(walls["export"], 3), fmt(speeds["export"], 0),
         fmt(cpus["export"], 0), fmt(memory["export"], 1),
         fmt(ratio(speeds["export"]["median"], speeds["ffmpeg"]["median"]), 2), "–"],
        ["edgeagent GET clip.mp4 over HTTP", "–", fmt(over_http["clip.mp4"], 0), "–", "–", "–",
         fmt(summary(1000 * t for t in ttfb["clip.mp4"]), 1)],
        ["edgeagent GET export.zip over HTTP", "–", fmt(over_http["export.zip"], 0), "–", "–", "–",
         fmt(summary(1000 * t for t in ttfb["export.zip"]), 1)],
        ["ffmpeg -f concat -ss -to -c copy", fmt(walls["ffmpeg"], 3), fmt(speeds["ffmpeg"], 0),
         fmt(cpus["ffmpeg"], 0), f"{fmt(memory['ffmpeg'], 0)} (peak RSS)", "1.00",
         fmt(summary(1000 * t for t in ttfb["ffmpeg"]), 1)],
    ]
    clip = camera_clip(settings)
    return {
        "name": "export",
        "title": "8. Export and clip cutting",
        "target": f"a {length_s / 60:g} min export ≥ {SPEED_TARGET:g} × real time; first byte of a clip < "
                  f"{TTFB_TARGET_S * 1000:.0f} ms",
        "met": met,
        "tables": [{
            "columns": ["job", "wall s", "× real time", "CPU % (1 core = 100)", "memory MB (RSS growth)",
                        "speed / ffmpeg", "first byte ms"],
            "rows": rows,
        }],
        "notes": [
            f"Recording: {clip.describe()}, looped to {seconds} s in {segment_s} s fragmented-MP4 segments; the cut "
            f"is {start_s:g} s to {start_s + length_s:g} s (a start between keyframes). {reps} repetitions.",
            "The HTTP figures include the loopback transfer; first byte is measured from sending the request. "
            "The export hashes every source segment again on a second thread while the clip is cut, and signs "
            "only when they all match the index.",
            "ffmpeg's first byte: fragmented MP4 to a pipe, from process start.",
        ],
        "data": {"speed": speeds, "cpu_pct": cpus, "wall_s": walls, "first_byte_s": first, "memory_mb": memory,
                 "http_speed": over_http, "length_s": length_s},
    }
