"""(6) The GIL: decode throughput of the transcode path while 10 viewers are served, against none.

A decode load (every frame of the 1080p30 H.264 clip, over and over, one decoder thread, as the shared
transcoder decodes) runs inside the real agent process (``benchmarks.probed_agent``) while the agent
serves 0 and then 10 passthrough viewers of another camera. Variants, to find what the GIL costs and what
fixes it: the load in a thread with Python's default 5 ms switch interval (how the agent runs today), the
same with ``sys.setswitchinterval(0.0002)``, and the load in a worker process.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.agents import ProbedAgent
from benchmarks.clients import Viewers
from benchmarks.clips import camera_clip
from benchmarks.cpu import measure
from benchmarks.figures import fmt, summary
from benchmarks.processes import Simulator
from benchmarks.settings import Settings

TARGET = 0.9
VARIANTS = {
    "thread": ("decode thread in the agent process, default switch interval (today)", {"BENCH_DECODE_MODE": "thread"}),
    "thread-si": ("decode thread, sys.setswitchinterval(0.0002)",
                  {"BENCH_DECODE_MODE": "thread", "BENCH_SWITCH_INTERVAL": "0.0002"}),
    "process": ("decode in a worker process", {"BENCH_DECODE_MODE": "process"}),
}


def run(settings: Settings) -> dict[str, Any]:
    clip = camera_clip(settings, "h264")
    path = str(clip.make(settings))
    viewers_n = 2 if settings.quick else 10
    variants = ("thread",) if settings.quick else tuple(VARIANTS)
    reps = max(1, settings.reps)
    raw: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    with Simulator(settings, Path(path), clip.fps) as sim:
        for variant in variants:
            env = {"BENCH_DECODE_CLIP": path, **VARIANTS[variant][1]}
            with ProbedAgent(settings, {"cam1": sim.url}, env=env, snapshot_interval_s=2.0) as agent, \
                    Viewers(settings, agent.url + "/whep/cam1") as viewers:
                time.sleep(settings.settle_s)
                for rep in range(reps):
                    figures = {}
                    for count in (0, viewers_n):
                        if count:
                            viewers.join(count)
                            time.sleep(settings.settle_s)
                        agent.mark()
                        window = measure({"agent": (agent.ps, True), "clients": (viewers.ps, False)},
                                         settings.window_s)
                        decode = agent.read()["decode"]
                        figures[count] = {"fps": decode["fps"], "cpu_ms": decode["decoder_cpu_ms_per_frame"],
                                          "agent_cpu": window.percent["agent"],
                                          "clients_cpu": window.percent["clients"],
                                          "machine": window.machine_percent}
                    viewers.leave(viewers_n)
                    time.sleep(settings.settle_s)
                    result = {"none": figures[0], "viewers": figures[viewers_n],
                              "ratio": figures[viewers_n]["fps"] / figures[0]["fps"]}
                    raw[variant].append(result)
                    settings.log(f"gil {variant} rep {rep + 1}/{reps}: {figures[0]['fps']:.0f} → "
                                 f"{figures[viewers_n]['fps']:.0f} fps (ratio {result['ratio']:.2f}), "
                                 f"machine {figures[viewers_n]['machine']:.0f} %")
    rows, data = [], []
    met = None
    for variant in variants:
        results = raw[variant]
        r = summary(x["ratio"] for x in results)
        if variant == "thread":
            met = r["median"] is not None and r["median"] >= TARGET
        rows.append([
            VARIANTS[variant][0], fmt(summary(x["none"]["fps"] for x in results), 0),
            fmt(summary(x["viewers"]["fps"] for x in results), 0), fmt(r, 2),
            fmt(summary(x["none"]["cpu_ms"] for x in results), 2),
            fmt(summary(x["viewers"]["cpu_ms"] for x in results), 2),
            fmt(summary(x["viewers"]["agent_cpu"] for x in results), 0),
            fmt(summary(x["viewers"]["clients_cpu"] for x in results), 0),
            fmt(summary(x["viewers"]["machine"] for x in results), 0),
        ])
        data.append({"variant": variant, "ratio": r, "raw": results})
    return {
        "name": "gil",
        "title": f"6. The GIL: decode throughput with {viewers_n} viewers against none",
        "target": f"throughput with {viewers_n} viewers / without ≥ {TARGET:g} (the agent as it runs today)",
        "met": met,
        "tables": [{
            "columns": ["variant", "decode fps, no viewer", f"decode fps, {viewers_n} viewers", "ratio",
                        "decoder CPU ms/frame, none", f"decoder CPU ms/frame, {viewers_n} viewers",
                        f"agent process CPU % with {viewers_n} viewers (incl. worker)", "clients CPU %",
                        "machine busy % (2 cores = 100)"],
            "rows": rows,
        }],
        "notes": [
            f"Load: {clip.describe()} decoded in full, over and over (thread_count 1, as the transcoder). "
            f"Viewers: passthrough of the same camera. {reps} repetitions of (none, {viewers_n}) per variant, "
            f"{settings.window_s:g} s windows.",
            "Decoder CPU per frame is the decode thread's own CPU time: when it stays flat while the rate falls, "
            "the decoder is waiting (for the GIL, or for a core), not working harder.",
        ],
        "data": data,
    }
