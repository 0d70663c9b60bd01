"""(8) The live view in a real browser: time to the first picture in headless Chromium, and the agent's CPU
per browser viewer, passthrough (H.264) and through the one shared transcode (H.265 camera).

Simulated cameras serve pre-encoded clips without re-encoding (the camera costs next to nothing), the real
agent runs as a process, and Chromium is the viewer (benchmarks/browser.py). Time to first frame is measured
in the page, from the start of the WHEP exchange to the first frame presented (``requestVideoFrameCallback``),
with the browser's own ICE gathering before the offer is sent (the page waits for it, up to 2 s) beside it,
for a viewer opened on a camera that is already streaming, at a different point of the GOP each time; the
agent's own figure for the same join (``time_to_first_frame_s``) is beside it. CPU is the agent process's
own (user + system over wall time, one core = 100 %), above its figure with no viewer.

Joins mid-GOP on two 10 s GOP cameras (the 1080p one, and a 640x360 one like the tests' cameras) are also
watched in the page for 4 s after the WHEP answer, every 20 ms: when the page has decoded the cached GOP
(what it received, less two frames, from then on), the longest time it held received frames without
decoding one, and the jitter-buffer delay of each frame until then. Two agents of their own serve these
cameras: the agent, and the reference, in the same run and interleaved join by join, the agent with its
cached GOP stamped one RTP tick per frame (``BENCH_ONE_TICK_CATCH_UP``, see benchmarks/probed_agent.py), as
it was before 02e76a9.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.agents import Agent, ProbedAgent
from benchmarks.browser import (
    browser_available,
    chromium,
    install_viewer,
    sample_viewer,
    start_viewer,
    stop_viewer,
    viewer_stats,
)
from benchmarks.clips import Clip, camera_clip
from benchmarks.cpu import measure
from benchmarks.figures import fmt, summary
from benchmarks.processes import Simulator, wait_until
from benchmarks.settings import TOKEN, Settings

TARGET_TTFF_S = 0.5  # the same target as benchmark 4, here as a browser sees it
CAMERAS = {"h264_gop1": ("h264", 1.0), "h264_gop10": ("h264", 10.0), "h265_gop1": ("h265", 1.0)}
CATCH_UP_CAMERAS = ("h264_gop10", "h264_360p_gop10")  # the second is made in run(), at the tests' size


def _camera_live(agent: Agent, camera: str) -> dict[str, Any]:
    document = agent.get("/cameras")
    return next(c for c in document["cameras"] if c["name"] == camera)["health"]["live"]


def _first_frame(driver: Any, viewer: str) -> dict[str, Any]:
    return wait_until(lambda: (s := viewer_stats(driver, viewer)) and s.get("firstFrameMs") and s, 20,
                      f"a frame on {viewer}")


def _open(driver: Any, viewers: list[str], camera: str) -> None:
    for viewer in viewers:
        refused = start_viewer(driver, viewer, camera, TOKEN)
        if refused != "ok":
            raise RuntimeError(f"viewer {viewer} on {camera} refused: {refused}")
    for viewer in viewers:
        _first_frame(driver, viewer)


def _close(driver: Any, viewers: list[str]) -> None:
    for viewer in viewers:
        stop_viewer(driver, viewer, TOKEN)


def _ttff(settings: Settings, driver: Any, agent: Agent, camera: str, joins: int) -> dict[str, Any]:
    page, gathering, agent_s = [], [], []
    for join in range(joins):
        viewer = f"{camera}-{join}"
        _open(driver, [viewer], camera)
        stats = _first_frame(driver, viewer)
        page.append(stats["firstFrameMs"] / 1000)
        gathering.append(stats["gatheredMs"] / 1000)
        # the agent's figure, once this viewer has been sent the whole cached GOP
        live = wait_until(lambda: (s := _camera_live(agent, camera))["time_to_live_s"] and s, 20,
                          "the cached GOP sent")
        agent_s.append(live["time_to_first_frame_s"])
        _close(driver, [viewer])
        time.sleep(0.7)  # the next join lands at another point of the GOP
        settings.log(f"browser ttff {camera} join {join + 1}/{joins}: page {page[-1]:.3f} s")
    return {"camera": camera, "page": summary(page), "gathering": summary(gathering), "agent": summary(agent_s)}


CATCH_UP_WATCH_S = 4.0
CATCH_UP_BEHIND = 2  # frames the page may be behind what it received once caught up (one being decoded)
CATCH_UP_AGENTS = {"agent": {"BENCH_LATENCY_PROBE": "0"},
                   "one tick per frame": {"BENCH_ONE_TICK_CATCH_UP": "1", "BENCH_LATENCY_PROBE": "0"}}


def catch_up_figures(samples: list[list[float]]) -> dict[str, float | None]:
    """From a viewer's samples (ms, decoded, received, jitter-buffer delay s, emitted): when the backlog was
    decoded, the longest hold of received frames, and the mean jitter-buffer delay of a frame until then."""
    caught = None
    for index, sample in enumerate(samples):
        if sample[1] > 0 and all(later[2] - later[1] <= CATCH_UP_BEHIND for later in samples[index:]):
            caught = sample
            break
    hold, since = 0.0, None
    for before, after in zip(samples, samples[1:], strict=False):
        if after[1] == before[1] and after[2] > before[2] + 1:
            since = before[0] if since is None else since
            hold = max(hold, after[0] - since)
        elif after[1] != before[1]:
            since = None
    return {
        "caught_up_ms": caught[0] if caught else None,
        "longest_hold_ms": hold,
        "jitter_ms_per_frame": caught[3] / caught[4] * 1000 if caught and caught[4] else None,
    }


def _catch_up(settings: Settings, driver: Any, agents: Mapping[str, Agent], camera: str,
              joins: int) -> dict[str, dict[str, Any]]:
    runs: dict[str, list[dict[str, float | None]]] = {label: [] for label in agents}
    for join in range(joins):
        for label, agent in agents.items():
            driver.get(agent.url + "/healthz")
            install_viewer(driver)
            viewer = f"catch-up-{join}"
            if (refused := start_viewer(driver, viewer, camera, TOKEN)) != "ok":
                raise RuntimeError(f"viewer on {camera} refused: {refused}")
            runs[label].append(catch_up_figures(sample_viewer(driver, viewer, CATCH_UP_WATCH_S)))
            _close(driver, [viewer])
            settings.log(f"browser catch-up {camera} {label} join {join + 1}/{joins}: {runs[label][-1]}")
            time.sleep(0.7)  # the next join lands at another point of the GOP
    return {label: {key: summary(v for r in results if (v := r[key]) is not None) for key in results[0]}
            | {"not_caught_up": sum(r["caught_up_ms"] is None for r in results)}
            for label, results in runs.items()}


def _catch_up_cameras(settings: Settings, driver: Any, urls: dict[str, str],
                      joins: int) -> dict[str, dict[str, dict[str, Any]]]:
    agents = [ProbedAgent(settings, urls, env=env, snapshot_interval_s=3600, max_viewers=8)
              for env in CATCH_UP_AGENTS.values()]
    try:
        for agent in agents:
            agent.start()
        by_label = dict(zip(CATCH_UP_AGENTS, agents, strict=True))
        return {camera: _catch_up(settings, driver, by_label, camera, joins) for camera in urls}
    finally:
        for agent in agents:
            agent.stop()


def _cpu(settings: Settings, driver: Any, agent: Agent, camera: str, count: int) -> dict[str, Any]:
    viewers = [f"{camera}-cpu{count}-{i}" for i in range(count)]
    _open(driver, viewers, camera)
    time.sleep(settings.settle_s)
    window = measure({"agent": (agent.ps, False)}, settings.window_s)
    live = _camera_live(agent, camera)
    _close(driver, viewers)
    time.sleep(settings.settle_s)
    transcode = live.get("transcode") or {}
    return {"camera": camera, "viewers": count, "cpu": window.percent["agent"],
            "encoders_opened": transcode.get("encoders_opened"), "transcoders_started": live["transcoders_started"]}


def run(settings: Settings) -> dict[str, Any]:
    if not browser_available():
        raise RuntimeError("needs Debian's chromium and chromium-driver")
    clips = {name: camera_clip(settings, codec, gop_s) for name, (codec, gop_s) in CAMERAS.items()}
    clips["h264_360p_gop10"] = Clip("h264", 640, 360, 25, 10.0, 20.0, 1000) if not settings.quick else \
        camera_clip(settings, "h264", 10.0)
    joins = 1 if settings.quick else max(5, settings.reps)
    counts = (1, 2)
    reps = max(1, settings.reps)
    idle: list[float] = []
    cpu: dict[tuple[str, int], list[dict[str, Any]]] = {(c, n): [] for c in ("h264_gop1", "h265_gop1") for n in counts}
    ttff: list[dict[str, Any]] = []
    catch_up: dict[str, dict[str, dict[str, Any]]] = {}
    simulators = [Simulator(settings, clip.make(settings), clip.fps) for clip in clips.values()]
    try:
        urls = {name: sim.start().url for name, sim in zip(clips, simulators, strict=True)}
        main = {name: urls[name] for name in CAMERAS}
        with Agent(settings, main, snapshot_interval_s=3600, max_viewers=8) as agent, \
                tempfile.TemporaryDirectory(prefix="edgeagent-bench-chromium-") as profile, \
                chromium(Path(profile)) as driver:
            driver.get(agent.url + "/healthz")
            install_viewer(driver)
            ttff = [_ttff(settings, driver, agent, camera, joins) for camera in ("h264_gop1", "h264_gop10")]
            catch_up = _catch_up_cameras(settings, driver, {name: urls[name] for name in CATCH_UP_CAMERAS},
                                         1 if settings.quick else 2 * joins)
            driver.get(agent.url + "/healthz")
            install_viewer(driver)
            for rep in range(reps):
                time.sleep(settings.settle_s)
                idle.append(measure({"agent": (agent.ps, False)}, settings.window_s).percent["agent"])
                for camera in ("h264_gop1", "h265_gop1"):
                    for count in counts:
                        cpu[(camera, count)].append(_cpu(settings, driver, agent, camera, count))
                settings.log(f"browser: repetition {rep + 1}/{reps} done")
    finally:
        for sim in simulators:
            sim.stop()

    base = summary(idle)
    met = all(case["page"]["max"] is not None and case["page"]["max"] <= TARGET_TTFF_S for case in ttff)
    ttff_rows = [[clips[case["camera"]].describe(), fmt(case["page"], 3), fmt(case["page"]["max"], 3),
                  fmt(case["gathering"], 3), fmt(case["agent"], 3)] for case in ttff]
    catch_up_rows = [[clips[camera].describe(), label, fmt(c["caught_up_ms"], 0), fmt(c["caught_up_ms"]["max"], 0),
                      fmt(c["longest_hold_ms"], 0), fmt(c["longest_hold_ms"]["max"], 0),
                      fmt(c["jitter_ms_per_frame"], 1), c["not_caught_up"]]
                     for camera, by_label in catch_up.items() for label, c in by_label.items()]
    cpu_rows, series = [], []
    for (camera, count), results in cpu.items():
        total = summary(r["cpu"] for r in results)
        per_viewer = summary((r["cpu"] - (base["median"] or 0.0)) / count for r in results)
        encoders = max((r["encoders_opened"] or 0) for r in results)
        path = "passthrough" if camera.startswith("h264") else "shared transcode to H.264"
        cpu_rows.append([clips[camera].describe(), path, count, fmt(total), fmt(per_viewer, 2),
                         encoders if camera.startswith("h265") else "–"])
        series.append({"camera": camera, "viewers": count, "agent": total, "per_viewer": per_viewer,
                       "encoders_opened": encoders})
        if camera.startswith("h265"):
            met = met and encoders == 1  # every H.265 viewer shares one encoder
    return {
        "name": "browser",
        "title": "8. The live view in headless Chromium",
        "target": f"first picture in the page ≤ {TARGET_TTFF_S:g} s at every join; one transcode shared by every "
                  "viewer of an H.265 camera",
        "met": met,
        "tables": [
            {"columns": ["camera", "page: first frame s", "page worst s",
                         "of which the page's ICE gathering s (capped at 2 s)", "agent: first frame sent s"],
             "rows": ttff_rows},
            {"columns": ["camera (joined mid-GOP)", "cached GOP stamped by", "page: cached GOP decoded ms", "worst ms",
                         "longest hold of received frames ms", "worst hold ms", "jitter-buffer ms a frame",
                         f"not caught up in {CATCH_UP_WATCH_S:g} s"],
             "rows": catch_up_rows},
            {"columns": ["camera", "path", "browser viewers", "agent CPU %", "agent % per viewer (above idle)",
                         "encoders opened"],
             "rows": cpu_rows},
        ],
        "notes": [
            f"{joins} join(s) per camera, one after the other, 0.7 s apart. Agent CPU with no viewer: {fmt(base)} %.",
            f"{reps} repetition(s) of the CPU windows ({settings.window_s:g} s each after {settings.settle_s:g} s "
            "of settling); viewers in one Chromium, each with its own peer connection.",
            "The agent's snapshots are out of the way (one an hour), so the figures are the live view's.",
        ],
        "data": {"ttff": ttff, "catch_up": catch_up, "cpu": series, "idle": base},
    }
