"""(7) Memory: the agent's RSS with 8 cameras and 4 viewers, and its growth over a soak in which the
camera restarts every few minutes (``--soak``: an hour; not part of the default run).
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from typing import Any

from benchmarks.agents import Agent, ProbedAgent
from benchmarks.clients import Viewers
from benchmarks.clips import camera_clip
from benchmarks.cpu import measure
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


VARIANTS = {"today": "the agent today (glibc's mmap threshold fixed at 128 kB)",
            "sliding": "reference: the agent with glibc's default, sliding mmap threshold (as before 481605d)"}
# benchmarks.probed_agent with the agent's allocator setting left out, and no latency probes
SLIDING_ENV = {"BENCH_SLIDING_MMAP_THRESHOLD": "1", "BENCH_LATENCY_PROBE": "0"}


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
                else:
                    agent = ProbedAgent(settings, cameras, env=SLIDING_ENV, snapshot_interval_s=2.0)
                with agent, contextlib.ExitStack() as stack:
                    time.sleep(settings.settle_s)  # every camera has made its first snapshot
                    # the allocator's setting costs mmap/munmap and page faults: the CPU beside the memory
                    cpu = measure({"agent": (agent.ps, False)}, settings.window_s).percent["agent"]
                    idle = _sample_memory(agent)
                    clients = _start_viewers(settings, agent, stack, list(cameras)[:n_viewers])
                    time.sleep(settings.settle_s + settings.window_s)
                    with_viewers = _sample_memory(agent)
                    fps = [c.stats()["viewers"][0]["fps"] for c in clients]
                samples[variant].append({"no_viewers": idle, "viewers": with_viewers, "viewer_fps": fps, "cpu": cpu})
                settings.log(f"memory {variant} rep {rep + 1}/{reps}: RSS {idle['rss_mb']:.0f} MB with {n_cameras} "
                             f"cameras, {with_viewers['rss_mb']:.0f} MB with {n_viewers} viewers")
    rows = []
    for variant in variants:
        got = samples[variant]
        rows += [
            [VARIANTS[variant], f"{n_cameras} cameras, no viewer",
             fmt(summary(s["no_viewers"]["rss_mb"] for s in got), 0),
             fmt(summary(s["no_viewers"]["private_mb"] for s in got), 0),
             fmt(summary(s["cpu"] for s in got), 1)],
            [VARIANTS[variant], f"{n_cameras} cameras, {n_viewers} viewers",
             fmt(summary(s["viewers"]["rss_mb"] for s in got), 0),
             fmt(summary(s["viewers"]["private_mb"] for s in got), 0), "–"],
        ]
    rss = summary(s["viewers"]["rss_mb"] for s in samples["today"])
    return {
        "name": "memory",
        "title": f"7. Memory with {n_cameras} cameras and {n_viewers} viewers",
        "target": f"RSS ≤ {TARGET_MB:g} MB (the agent today)",
        "met": rss["median"] is not None and rss["median"] <= TARGET_MB,
        "tables": [{"columns": ["agent", "state", "RSS MB", "RSS less file-backed shared pages MB", "agent CPU %"],
                    "rows": rows}],
        "notes": [
            f"Camera: {clip.describe()} for every camera, a snapshot every 2 s each; viewers on different cameras. "
            f"{reps} fresh agents per variant, interleaved; CPU over {settings.window_s:g} s from "
            f"{settings.settle_s:g} s after start, memory read at its end and "
            f"{settings.settle_s + settings.window_s:g} s after the viewers joined.",
            "RSS counts the mapped shared libraries (FFmpeg, OpenSSL, numpy, OpenCV) in full; the second figure "
            "leaves out file-backed shared pages (RssFile + RssShmem). Importing what the agent needs (Python, "
            "PyAV, numpy, OpenCV, aiortc, aiohttp, paho) is 112 MB RSS before any camera.",
            "Reference: `benchmarks.probed_agent` with `BENCH_SLIDING_MMAP_THRESHOLD=1`, which leaves out "
            "`edgeagent.allocator.fix_mmap_threshold` (see the findings).",
        ],
        "data": {"samples": samples},
    }


def _growth(series: list[tuple[float, float]], restarts: list[float], seconds: float, restart_every_s: float
            ) -> dict[str, float]:
    """Baseline: the samples after the first restart has settled (allocator pools, caches warmed up);
    end: the last tenth of the run."""
    warm = restarts[0] + restart_every_s / 2 if restarts else seconds / 4
    base_samples = [rss for t, rss in series if warm <= t < warm + max(restart_every_s, seconds / 10)]
    end_samples = [rss for t, rss in series[-max(1, len(series) // 10):]]
    baseline = statistics.median(base_samples) if base_samples else series[0][1]
    end = statistics.median(end_samples)
    return {"first_mb": series[0][1], "baseline_mb": baseline, "end_mb": end,
            "growth_pct": 100 * (end - baseline) / baseline, "peak_mb": max(rss for _, rss in series)}


def run_soak(settings: Settings, seconds: float | None = None, restart_every_s: float | None = None,
             env: dict[str, str] | None = None) -> dict[str, Any]:
    """The agent with 8 cameras and 4 viewers for an hour, the camera restarting every 3 minutes; beside it,
    on the same camera, the same agent with glibc's sliding mmap threshold (the reference)."""
    seconds = seconds or (5.0 if settings.quick else 3600.0)
    restart_every_s = restart_every_s or (2.5 if settings.quick else 180.0)
    down_s = 0.5 if settings.quick else 5.0
    sample_every_s = 0.5 if settings.quick else 10.0
    clip = camera_clip(settings, "h264")
    n_cameras, n_viewers = (2, 1) if settings.quick else (8, 4)
    series: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    restarts: list[float] = []
    fps: dict[str, list[float]] = {}
    online: dict[str, bool] = {}
    sim = Simulator(settings, clip.make(settings), clip.fps).start()
    try:
        cameras = {f"cam{i:02d}": sim.url for i in range(n_cameras)}
        with contextlib.ExitStack() as stack:
            agents: dict[str, Agent] = {
                "today": stack.enter_context(Agent(settings, cameras, snapshot_interval_s=2.0, env=env)),
                "sliding": stack.enter_context(ProbedAgent(settings, cameras, env={**SLIDING_ENV, **(env or {})},
                                                           snapshot_interval_s=2.0)),
            }
            clients = {v: _start_viewers(settings, agent, stack, list(cameras)[:n_viewers])
                       for v, agent in agents.items()}
            started = time.monotonic()
            next_restart = started + restart_every_s
            progress = WORK / "soak-progress.json"  # what was seen so far, should the run be cut short
            while (now := time.monotonic()) - started < seconds:
                for variant, agent in agents.items():
                    series[variant].append((now - started, agent.ps.memory_info().rss / 2**20))
                if not settings.quick:
                    progress.write_text(json.dumps({"series": series, "restarts": restarts}))
                if now >= next_restart:
                    sim.stop()
                    time.sleep(down_s)
                    sim.start()
                    restarts.append(time.monotonic() - started)
                    next_restart = time.monotonic() + restart_every_s
                    settings.log(f"soak: camera restarted at {restarts[-1]:.0f} s, RSS "
                                 + ", ".join(f"{v} {series[v][-1][1]:.1f} MB" for v in agents))
                time.sleep(sample_every_s)
            time.sleep(1.0 if settings.quick else 10.0)  # the viewers' picture is back after the last restart
            for group in clients.values():
                for client in group:
                    client.mark()
            time.sleep(1.0 if settings.quick else 3.0)
            for variant, agent in agents.items():
                fps[variant] = [c.stats()["viewers"][0]["fps"] for c in clients[variant]]
                online[variant] = agent.online()
    finally:
        sim.stop()
    figures = {v: _growth(series[v], restarts, seconds, restart_every_s) for v in VARIANTS}
    today = figures["today"]
    met = (today["growth_pct"] <= TARGET_GROWTH_PCT and today["peak_mb"] <= TARGET_MB
           and all(f > 0 for f in fps["today"]))
    return {
        "name": "soak",
        "title": f"7b. Memory soak: {seconds / 60:.3g} min, {n_cameras} cameras, {n_viewers} viewers, camera restarted "
                 f"every {restart_every_s:g} s",
        "target": f"RSS growth ≤ {TARGET_GROWTH_PCT:g} % (and RSS ≤ {TARGET_MB:g} MB); viewers still receive",
        "met": met,
        "tables": [{
            "columns": ["agent", "RSS at the start MB", "RSS after warm-up MB", "RSS at the end MB", "growth %",
                        "peak MB", "camera restarts", "viewer fps at the end", "cameras online at the end"],
            "rows": [[VARIANTS[v], fmt(f["first_mb"]), fmt(f["baseline_mb"]), fmt(f["end_mb"]),
                      fmt(f["growth_pct"], 2), fmt(f["peak_mb"]), len(restarts),
                      ", ".join(f"{x:.0f}" for x in fps[v]), "yes" if online[v] else "NO"]
                     for v, f in figures.items()],
        }],
        "notes": [
            *([f"Agent environment: {' '.join(f'{k}={v}' for k, v in env.items())}."] if env else []),
            "Both agents run at once on the same simulator, each with its own viewers; the reference is "
            "`benchmarks.probed_agent` with `BENCH_SLIDING_MMAP_THRESHOLD=1`.",
            f"Camera restarts: the simulator stopped for {down_s:g} s and started again on the same port. RSS sampled "
            f"every {sample_every_s:g} s; warm-up ends half a restart period after the first restart; the end is "
            "the median of the last tenth of the samples.",
        ],
        "data": {"series": series, "restarts": restarts, "figures": figures},
    }
