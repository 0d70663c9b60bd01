"""(7) Memory: the agent's RSS with 8 cameras and 4 viewers, and its growth over a soak in which the
camera restarts every few minutes (``--soak``: an hour; not part of the default run).
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from typing import Any

from benchmarks.agents import PROPOSED_ENV, Agent, ProbedAgent
from benchmarks.clients import Viewers
from benchmarks.clips import camera_clip
from benchmarks.figures import fmt, summary
from benchmarks.processes import Simulator
from benchmarks.settings import WORK, Settings

TARGET_MB = 150.0
TARGET_GROWTH_PCT = 2.0


def _sample_memory(agent: Agent) -> dict[str, float]:
    info = agent.ps.memory_info()
    return {"rss_mb": info.rss / 2**20, "private_mb": (info.rss - info.shared) / 2**20}


def _start_viewers(settings: Settings, agent: Agent, stack: contextlib.ExitStack, cameras: list[str]) -> list[Viewers]:
    clients = []
    for name in cameras:
        viewers = stack.enter_context(Viewers(settings, f"{agent.url}/whep/{name}"))
        viewers.join(1)
        clients.append(viewers)
    return clients


VARIANTS = {"today": "the agent today",
            "proposed": "proposed: a keyframe decoder per snapshot, no PyAV read timeout",
            "mmap": "the agent today with MALLOC_MMAP_THRESHOLD_=131072 (proposed)"}
MMAP_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}  # a fixed threshold: glibc returns big buffers when freed


def run(settings: Settings) -> dict[str, Any]:
    clip = camera_clip(settings, "h264")
    n_cameras, n_viewers = (2, 1) if settings.quick else (8, 4)
    variants = ("today",) if settings.quick else tuple(VARIANTS)
    reps = max(1, settings.reps)
    samples: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    with Simulator(settings, clip.make(settings), clip.fps) as sim:
        for rep in range(reps):
            for variant in variants if rep % 2 == 0 else tuple(reversed(variants)):
                cameras = {f"cam{i:02d}": sim.url for i in range(n_cameras)}
                if variant == "today":
                    agent: Agent = Agent(settings, cameras, snapshot_interval_s=2.0)
                elif variant == "mmap":
                    agent = Agent(settings, cameras, snapshot_interval_s=2.0, env=MMAP_ENV)
                else:
                    agent = ProbedAgent(settings, cameras, env=PROPOSED_ENV, snapshot_interval_s=2.0)
                with agent, contextlib.ExitStack() as stack:
                    time.sleep(settings.settle_s)  # every camera has made its first snapshot
                    idle = _sample_memory(agent)
                    clients = _start_viewers(settings, agent, stack, list(cameras)[:n_viewers])
                    time.sleep(settings.settle_s + settings.window_s)
                    with_viewers = _sample_memory(agent)
                    fps = [c.stats()["viewers"][0]["fps"] for c in clients]
                samples[variant].append({"no_viewers": idle, "viewers": with_viewers, "viewer_fps": fps})
                settings.log(f"memory {variant} rep {rep + 1}/{reps}: RSS {idle['rss_mb']:.0f} MB with {n_cameras} "
                             f"cameras, {with_viewers['rss_mb']:.0f} MB with {n_viewers} viewers")
    rows = []
    for variant in variants:
        got = samples[variant]
        rows += [
            [VARIANTS[variant], f"{n_cameras} cameras, no viewer",
             fmt(summary(s["no_viewers"]["rss_mb"] for s in got), 0),
             fmt(summary(s["no_viewers"]["private_mb"] for s in got), 0)],
            [VARIANTS[variant], f"{n_cameras} cameras, {n_viewers} viewers",
             fmt(summary(s["viewers"]["rss_mb"] for s in got), 0),
             fmt(summary(s["viewers"]["private_mb"] for s in got), 0)],
        ]
    rss = summary(s["viewers"]["rss_mb"] for s in samples["today"])
    return {
        "name": "memory",
        "title": f"7. Memory with {n_cameras} cameras and {n_viewers} viewers",
        "target": f"RSS ≤ {TARGET_MB:g} MB (the agent today)",
        "met": rss["median"] is not None and rss["median"] <= TARGET_MB,
        "tables": [{"columns": ["agent", "state", "RSS MB", "RSS less file-backed shared pages MB"], "rows": rows}],
        "notes": [
            f"Camera: {clip.describe()} for every camera, a snapshot every 2 s each; viewers on different cameras. "
            f"{reps} fresh agents per variant, interleaved; memory read {settings.settle_s:g} s after start and "
            f"{settings.settle_s + settings.window_s:g} s after the viewers joined.",
            "RSS counts the mapped shared libraries (FFmpeg, OpenSSL, numpy, OpenCV) in full; the second figure "
            "leaves out file-backed shared pages (RssFile + RssShmem). Importing what the agent needs (Python, "
            "PyAV, numpy, OpenCV, aiortc, aiohttp, paho) is 112 MB RSS before any camera.",
            "Proposed: `benchmarks.probed_agent` with `BENCH_FRESH_SNAPSHOT_DECODER=1` and `BENCH_NO_READ_TIMEOUT=1` "
            "(see the findings).",
        ],
        "data": {"samples": samples},
    }


def run_soak(settings: Settings, seconds: float | None = None, restart_every_s: float | None = None,
             env: dict[str, str] | None = None) -> dict[str, Any]:
    """The agent with 8 cameras and 4 viewers for an hour; the camera restarts every 3 minutes."""
    seconds = seconds or (5.0 if settings.quick else 3600.0)
    restart_every_s = restart_every_s or (2.5 if settings.quick else 180.0)
    down_s = 0.5 if settings.quick else 5.0
    sample_every_s = 0.5 if settings.quick else 10.0
    clip = camera_clip(settings, "h264")
    n_cameras, n_viewers = (2, 1) if settings.quick else (8, 4)
    series: list[tuple[float, float]] = []
    restarts: list[float] = []
    sim = Simulator(settings, clip.make(settings), clip.fps).start()
    try:
        cameras = {f"cam{i:02d}": sim.url for i in range(n_cameras)}
        with Agent(settings, cameras, snapshot_interval_s=2.0, env=env) as agent, contextlib.ExitStack() as stack:
            clients = _start_viewers(settings, agent, stack, list(cameras)[:n_viewers])
            started = time.monotonic()
            next_restart = started + restart_every_s
            progress = WORK / "soak-progress.json"  # what was seen so far, should the run be cut short
            while (now := time.monotonic()) - started < seconds:
                series.append((now - started, agent.ps.memory_info().rss / 2**20))
                if not settings.quick:
                    progress.write_text(json.dumps({"series": series, "restarts": restarts}))
                if now >= next_restart:
                    sim.stop()
                    time.sleep(down_s)
                    sim.start()
                    restarts.append(time.monotonic() - started)
                    next_restart = time.monotonic() + restart_every_s
                    settings.log(f"soak: camera restarted at {restarts[-1]:.0f} s, RSS {series[-1][1]:.1f} MB")
                time.sleep(sample_every_s)
            time.sleep(1.0 if settings.quick else 10.0)  # the viewers' picture is back after the last restart
            for client in clients:
                client.mark()
            time.sleep(1.0 if settings.quick else 3.0)
            fps = [c.stats()["viewers"][0]["fps"] for c in clients]
            online = agent.online()
    finally:
        sim.stop()
    # Baseline: the samples after the first restart has settled (allocator pools, caches warmed up);
    # end: the last tenth of the run.
    warm = restarts[0] + restart_every_s / 2 if restarts else seconds / 4
    base_samples = [rss for t, rss in series if warm <= t < warm + max(restart_every_s, seconds / 10)]
    end_samples = [rss for t, rss in series[-max(1, len(series) // 10):]]
    baseline = statistics.median(base_samples) if base_samples else series[0][1]
    end = statistics.median(end_samples)
    growth = 100 * (end - baseline) / baseline
    peak = max(rss for _, rss in series)
    met = growth <= TARGET_GROWTH_PCT and peak <= TARGET_MB and all(f > 0 for f in fps)
    return {
        "name": "soak",
        "title": f"7b. Memory soak: {seconds / 60:.3g} min, {n_cameras} cameras, {n_viewers} viewers, camera restarted "
                 f"every {restart_every_s:g} s",
        "target": f"RSS growth ≤ {TARGET_GROWTH_PCT:g} % (and RSS ≤ {TARGET_MB:g} MB); viewers still receive",
        "met": met,
        "tables": [{
            "columns": ["RSS after warm-up MB", "RSS at the end MB", "growth %", "peak MB", "camera restarts",
                        "viewer fps at the end", "cameras online at the end"],
            "rows": [[fmt(baseline), fmt(end), fmt(growth, 2), fmt(peak), len(restarts),
                      ", ".join(f"{f:.0f}" for f in fps), "yes" if online else "NO"]],
        }],
        "notes": [
            *([f"Agent environment: {' '.join(f'{k}={v}' for k, v in env.items())}."] if env else []),
            f"Camera restarts: the simulator stopped for {down_s:g} s and started again on the same port. RSS sampled "
            f"every {sample_every_s:g} s; warm-up ends half a restart period after the first restart; the end is "
            "the median of the last tenth of the samples.",
        ],
        "data": {"series": series, "restarts": restarts, "baseline_mb": baseline, "end_mb": end, "growth_pct": growth},
    }
