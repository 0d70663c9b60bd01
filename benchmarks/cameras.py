"""(2) Cameras per core: the real agent process with K cameras on its default pipeline (ingest, health, a
snapshot per GOP published on MQTT) against the least any process can do to ingest (one
``ffmpeg -c copy -f null`` per camera) and a Frigate-style decoder (ffmpeg to raw frames at 5 fps, read
into numpy).

One simulator process serves the clip; every camera is a separate RTSP connection to it (its factory is
shared, so there is one pipeline and K clients, as on a real camera with K viewers).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from benchmarks.agents import FIX_ENV, Agent, ProbedAgent
from benchmarks.clips import camera_clip
from benchmarks.cpu import measure
from benchmarks.figures import fmt, ratio, summary
from benchmarks.frigate_reader import ffmpeg_argv
from benchmarks.processes import Mosquitto, Simulator, have_mosquitto, popen
from benchmarks.settings import Settings

TARGET_PCT = 2.0  # of one core per 1080p30 camera
FRIGATE_MAX = 8  # ~14 % of a core per camera: more than this does not fit two cores


def copy_argv(url: str) -> list[str]:
    return ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-rtsp_transport", "tcp", "-i", url,
            "-c", "copy", "-f", "null", "-"]


def run_agent(settings: Settings, sim: Simulator, count: int, mqtt_port: int | None, fixed: bool = False
              ) -> dict[str, Any]:
    cameras = {f"cam{i:02d}": sim.url for i in range(count)}
    agent: Agent
    if fixed:  # the proposed change to the source, tried in the benchmark's process (see probed_agent)
        agent = ProbedAgent(settings, cameras, env={**FIX_ENV, "BENCH_LATENCY_PROBE": "0"},
                            snapshot_interval_s=2.0, mqtt_port=mqtt_port)
    else:
        agent = Agent(settings, cameras, snapshot_interval_s=2.0, mqtt_port=mqtt_port)
    with agent:
        time.sleep(settings.settle_s)
        window = measure({"agent": (agent.ps, False), "camera": (sim.ps, False)}, settings.window_s)
        rss = agent.ps.memory_info().rss / 2**20
        doc = agent.get("/cameras")
    fps = [c["health"].get("fps") or 0 for c in doc["cameras"]]
    snaps = sum(1 for c in doc["cameras"] if c["health"].get("snapshots", {}).get("made", 0) > 0)
    return {"cpu": window.percent["agent"], "camera_cpu": window.percent["camera"], "rss_mb": rss,
            "machine": window.machine_percent, "min_fps": min(fps), "cameras_with_snapshots": snaps}


def run_copy(settings: Settings, sim: Simulator, count: int) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        procs = [
            stack.enter_context(popen(settings, copy_argv(sim.url), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
            for _ in range(count)
        ]
        time.sleep(settings.settle_s)
        groups = {f"p{i}": (psutil.Process(p.pid), False) for i, p in enumerate(procs)}
        groups["camera"] = (sim.ps, False)
        window = measure(groups, settings.window_s)
        alive = all(p.poll() is None for p in procs)
    cpu = sum(v for k, v in window.percent.items() if k != "camera")
    return {"cpu": cpu, "camera_cpu": window.percent["camera"], "machine": window.machine_percent, "alive": alive}


def run_frigate(settings: Settings, sim: Simulator, count: int, width: int, height: int) -> dict[str, Any]:
    argv = [sys.executable, "-m", "benchmarks.frigate_reader", "--width", str(width), "--height", str(height),
            "--fps", "5", *([sim.url] * count)]
    settings.record(ffmpeg_argv("URL", 5))
    from benchmarks.processes import python_env

    with popen(settings, argv, stdout=subprocess.PIPE, text=True, env=python_env()) as proc:
        assert proc.stdout is not None
        seen = 0
        deadline = time.monotonic() + 30
        while seen < count and time.monotonic() < deadline:
            if proc.stdout.readline().startswith("FRAME"):
                seen += 1
        if seen < count:
            raise RuntimeError(f"Frigate-style reader: only {seen} of {count} cameras gave a picture")
        time.sleep(max(1.0, settings.settle_s - 1))
        window = measure({"reader": (psutil.Process(proc.pid), True), "camera": (sim.ps, False)},
                         settings.window_s)
    return {"cpu": window.percent["reader"], "camera_cpu": window.percent["camera"],
            "machine": window.machine_percent}


def run(settings: Settings) -> dict[str, Any]:
    clip = camera_clip(settings, "h264")
    path = clip.make(settings)
    counts = (1,) if settings.quick else (1, 4, 8, 16, 32)
    frigate_max = 1 if settings.quick else FRIGATE_MAX
    methods = ("agent", "copy", "frigate") if settings.quick else ("agent", "agent_fix", "copy", "frigate")
    raw: dict[str, dict[int, list[dict[str, Any]]]] = {m: {k: [] for k in counts} for m in methods}
    reps = max(1, settings.reps)
    use_mqtt = have_mosquitto()
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp, contextlib.ExitStack() as stack:
        mqtt_port = stack.enter_context(Mosquitto(settings, Path(tmp))).port if use_mqtt else None
        sim = stack.enter_context(Simulator(settings, path, clip.fps))
        settings.record([*copy_argv("URL")])
        for rep in range(reps):
            for count in counts:
                order = methods if rep % 2 == 0 else tuple(reversed(methods))
                for method in order:
                    if method == "frigate" and count > frigate_max:
                        continue
                    if method in ("agent", "agent_fix"):
                        result = run_agent(settings, sim, count, mqtt_port, fixed=method == "agent_fix")
                    elif method == "copy":
                        result = run_copy(settings, sim, count)
                    else:
                        result = run_frigate(settings, sim, count, clip.width, clip.height)
                    raw[method][count].append(result)
                    settings.log(f"cameras K={count} {method} rep {rep + 1}/{reps}: {result['cpu']:.1f} % "
                                 f"({result['cpu'] / count:.2f} %/camera), machine {result['machine']:.0f} %")

    rows, series, met = [], [], True
    one = summary(r["cpu"] for r in raw["agent"][counts[0]])["median"] if counts[0] == 1 else None
    for count in counts:
        agent = summary(r["cpu"] for r in raw["agent"][count])
        per_cam = summary(r["cpu"] / count for r in raw["agent"][count])
        copy = summary(r["cpu"] for r in raw["copy"][count])
        frig = summary(r["cpu"] for r in raw["frigate"][count])
        fixed = summary(r["cpu"] / count for r in raw.get("agent_fix", {}).get(count, []))
        sim_cpu = summary(r["camera_cpu"] for r in raw["agent"][count])
        machine = summary(r["machine"] for r in raw["agent"][count])
        rss = summary(r["rss_mb"] for r in raw["agent"][count])
        min_fps = min(r["min_fps"] for r in raw["agent"][count])
        snapped = min(r["cameras_with_snapshots"] for r in raw["agent"][count])
        met = met and per_cam["median"] is not None and per_cam["median"] <= TARGET_PCT
        marginal = (agent["median"] - one) / (count - 1) if one is not None and count > 1 else None
        rows.append([
            count, fmt(agent), fmt(per_cam, 2), fmt(marginal, 2), fmt(fixed, 2) if fixed["n"] else "not run",
            fmt(copy),
            fmt(ratio(agent["median"], copy["median"]), 2),
            fmt(frig) if frig["n"] else "not run", fmt(ratio(agent["median"], frig["median"]), 2) if frig["n"] else "–",
            fmt(sim_cpu), fmt(machine, 0), fmt(rss, 0), f"{min_fps:.1f}", f"{snapped}/{count}",
        ])
        series.append({"cameras": count, "agent": agent, "agent_per_camera": per_cam, "copy": copy, "frigate": frig,
                       "agent_marginal_per_camera": marginal,
                       "agent_fix_per_camera": fixed,
                       "agent_fix": summary(r["cpu"] for r in raw.get("agent_fix", {}).get(count, [])),
                       "camera_cpu": sim_cpu, "machine": machine, "agent_rss_mb": rss, "min_fps": min_fps})
    return {
        "name": "cameras",
        "title": "2. Cameras per core",
        "target": f"≤ {TARGET_PCT:g} % of one core per {clip.describe()} camera",
        "met": met,
        "tables": [{
            "columns": ["cameras", "agent CPU %", "agent % per camera", "agent % per camera beyond the first",
                        "agent % per camera, PyAV read timeout dropped (proposed)", "ffmpeg -c copy CPU % (sum)",
                        "agent / copy", "Frigate-style CPU % (reader + ffmpeg)", "agent / Frigate-style",
                        "simulator CPU % (agent run)", "machine busy % (all cores)", "agent RSS MB",
                        "lowest camera fps (agent)", "cameras with snapshots"],
            "rows": rows,
        }],
        "notes": [
            f"Input: {clip.describe()}, served by one simulator process to every connection.",
            f"{reps} repetitions, methods interleaved (order reversed every other repetition); each figure is a "
            f"{settings.window_s:g} s window after {settings.settle_s:g} s of settling.",
            "The agent's default pipeline: ingest over TCP, a 640-wide JPEG snapshot every 2 s (one per GOP), "
            + ("health and snapshots published to a local mosquitto." if use_mqtt else "no MQTT broker (absent)."),
            "Proposed: the agent with `av.open(..., timeout=(open_s, None))` in `CameraSource._session`, tried by "
            "patching in `benchmarks.probed_agent` (the RTSP `timeout` option still bounds every read); see the "
            "findings below.",
            f"The Frigate-style reference decodes every frame (about 14 % of a core per camera); it runs up to "
            f"{frigate_max} cameras, beyond which it needs more than this machine's cores.",
        ],
        "data": {"series": series, "raw": raw},
    }
