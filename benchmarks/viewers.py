"""(3) Viewers and (4) time to first frame: the agent's WebRTC passthrough against stock aiortc.

(3) CPU of the serving process with 0, 1, 5, 10, 20 viewers of one 1080p30 H.264 camera. The agent runs
with its snapshots out of the way (one an hour) so both sides do the same work: one RTSP ingest, N
passthrough viewers. Per viewer is the agent's CPU above its own zero-viewer figure, divided by N.

(4) A new viewer joins a camera that is already streaming, at a random point of the GOP, for GOPs of 1, 4
and 10 s; time from the start of its offer to the arrival of the whole first keyframe. The agent and the
stock server read the same simulator at the same time and take turns.
"""

from __future__ import annotations

import random
import time
from typing import Any

from benchmarks.agents import FIX_ENV, Agent, ProbedAgent
from benchmarks.clients import StockServer, Viewers
from benchmarks.clips import camera_clip
from benchmarks.cpu import measure
from benchmarks.figures import fmt, ratio, summary
from benchmarks.processes import Simulator
from benchmarks.settings import Settings

TARGET_RATIO = 1.0
TARGET_PER_VIEWER = 2.5
TARGET_TTFF_S = 0.5


def _sweep(settings: Settings, system: str, sim: Simulator, counts: tuple[int, ...]) -> dict[int, dict[str, Any]]:
    """One server, viewers added up to each count in turn, a CPU window at each."""
    if system == "agent":
        server: Any = Agent(settings, {"cam1": sim.url}, snapshot_interval_s=3600)
    elif system == "agent_fix":
        server = ProbedAgent(settings, {"cam1": sim.url}, env={**FIX_ENV, "BENCH_LATENCY_PROBE": "0"},
                             snapshot_interval_s=3600)
    else:
        server = StockServer(settings, sim.url)
    results = {}
    with server:
        whep = server.whep if system == "stock" else server.url + "/whep/cam1"
        with Viewers(settings, whep) as viewers:
            joined = 0
            for count in counts:
                if count > joined:
                    viewers.join(count - joined)
                    joined = count
                # past the cached GOP's burst to the newest viewer
                time.sleep(settings.settle_s + (0.0 if settings.quick or not count else 2.0))
                viewers.mark()
                window = measure({"server": (server.ps, False), "clients": (viewers.ps, False)}, settings.window_s)
                stats = viewers.stats()
                fps = [v["fps"] for v in stats["viewers"]]
                results[count] = {
                    "cpu": window.percent["server"], "clients_cpu": window.percent["clients"],
                    "machine": window.machine_percent, "min_fps": min(fps) if fps else None,
                    "mean_kbps": sum(v["kbps"] for v in stats["viewers"]) / len(fps) if fps else None,
                }
                r = results[count]
                settings.log(f"viewers N={count} {system}: {r['cpu']:.1f} %, clients {r['clients_cpu']:.1f} %, "
                             f"lowest viewer fps {r['min_fps']}, machine {r['machine']:.0f} %")
    return results


def run_viewers(settings: Settings) -> dict[str, Any]:
    clip = camera_clip(settings, "h264")
    counts = (0, 2) if settings.quick else (0, 1, 5, 10, 20)
    systems = ("agent", "stock") if settings.quick else ("agent", "agent_fix", "stock")
    raw: dict[str, dict[int, list[dict[str, Any]]]] = {s: {n: [] for n in counts} for s in systems}
    reps = max(1, settings.reps)
    with Simulator(settings, clip.make(settings), clip.fps) as sim:
        for rep in range(reps):
            for system in systems if rep % 2 == 0 else tuple(reversed(systems)):
                for count, result in _sweep(settings, system, sim, counts).items():
                    raw[system][count].append(result)
            settings.log(f"viewers: repetition {rep + 1}/{reps} done")
    base = summary(r["cpu"] for r in raw["agent"][0])["median"] or 0.0
    rows, series, met = [], [], True
    for count in counts:
        agent = summary(r["cpu"] for r in raw["agent"][count])
        stock = summary(r["cpu"] for r in raw["stock"][count])
        fixed = summary(r["cpu"] for r in raw.get("agent_fix", {}).get(count, []))
        fix_base = summary(r["cpu"] for r in raw.get("agent_fix", {}).get(0, []))["median"]
        per_viewer = summary((r["cpu"] - base) / count for r in raw["agent"][count]) if count else None
        stock_base = summary(r["cpu"] for r in raw["stock"][1])["median"] if 1 in counts else None
        clients_a = summary(r["clients_cpu"] for r in raw["agent"][count])
        clients_s = summary(r["clients_cpu"] for r in raw["stock"][count])
        fps_a = min((r["min_fps"] for r in raw["agent"][count] if r["min_fps"] is not None), default=None)
        fps_s = min((r["min_fps"] for r in raw["stock"][count] if r["min_fps"] is not None), default=None)
        r = ratio(agent["median"], stock["median"])
        if count:
            met = met and r is not None and r <= TARGET_RATIO and per_viewer is not None \
                and per_viewer["median"] <= TARGET_PER_VIEWER
        fix_ratio = ratio(fixed["median"], stock["median"])
        fix_per_viewer = (fixed["median"] - fix_base) / count if count and fixed["n"] and fix_base is not None \
            else None
        rows.append([count, fmt(agent), fmt(stock), fmt(r, 2) if count else "–",
                     fmt(per_viewer, 2) if per_viewer else "–",
                     fmt(fixed) if fixed["n"] else "not run", fmt(fix_ratio, 2) if count and fixed["n"] else "–",
                     fmt(fix_per_viewer, 2) if fix_per_viewer is not None else "–",
                     fmt((stock["median"] - stock_base) / (count - 1), 2) if count > 1 and stock_base else "–",
                     fmt(clients_a), fmt(clients_s), fmt(fps_a), fmt(fps_s),
                     fmt(summary(x["machine"] for x in raw["agent"][count]), 0)])
        series.append({"viewers": count, "agent": agent, "stock": stock, "agent_per_viewer": per_viewer,
                       "agent_fix": fixed,
                       "clients_agent": clients_a, "clients_stock": clients_s})
    return {
        "name": "viewers",
        "title": "3. CPU per WebRTC viewer (1080p passthrough)",
        "target": f"agent ≤ {TARGET_RATIO:g} × stock aiortc and ≤ {TARGET_PER_VIEWER:g} % of one core per viewer",
        "met": met,
        "tables": [{
            "columns": ["viewers", "agent CPU %", "stock aiortc CPU %", "agent / stock", "agent % per viewer",
                        "agent CPU %, PyAV read timeout dropped (proposed)", "proposed / stock",
                        "proposed % per viewer",
                        "stock % per extra viewer", "clients CPU % (agent run)", "clients CPU % (stock run)",
                        "lowest viewer fps (agent)", "lowest viewer fps (stock)", "machine busy % (agent run)"],
            "rows": rows,
        }],
        "notes": [
            f"Camera: {clip.describe()}. {reps} repetitions; in each, one agent and one stock server (order "
            "alternating) get viewers added up to each count, with a CPU window of "
            f"{settings.window_s:g} s at each count after settling.",
            "Agent per viewer: (CPU with N viewers − CPU with none, i.e. ingest alone) / N. Stock per extra viewer: "
            "(CPU with N − CPU with 1) / (N − 1), since stock aiortc reads the camera only once someone watches.",
            "Proposed: the agent run with the change to the source described under the cameras benchmark "
            "(`benchmarks.probed_agent` with `BENCH_NO_READ_TIMEOUT=1`).",
            "Clients: one process of light aiortc viewers (SRTP, no depacketising or decoding), reported apart.",
        ],
        "data": {"series": series, "raw": raw},
    }


def run_ttff(settings: Settings) -> dict[str, Any]:
    gops = (1.0,) if settings.quick else (1.0, 4.0, 10.0)
    joins = 1 if settings.quick else max(5, settings.reps)
    rng = random.Random(4)
    rows, data, met = [], [], True
    for gop in gops:
        clip = camera_clip(settings, "h264", gop_s=gop)
        samples: dict[str, list[float]] = {"agent": [], "stock": []}
        signaling: dict[str, list[float]] = {"agent": [], "stock": []}
        with Simulator(settings, clip.make(settings), clip.fps) as sim, \
                Agent(settings, {"cam1": sim.url}, snapshot_interval_s=3600) as agent, \
                StockServer(settings, sim.url) as stock, \
                Viewers(settings, agent.url + "/whep/cam1") as agent_viewers, \
                Viewers(settings, stock.whep) as stock_viewers:
            clients = {"agent": agent_viewers, "stock": stock_viewers}
            for viewers in clients.values():
                viewers.join(1)  # a viewer that stays: the camera is streaming when the others join
            time.sleep(1.0)
            for j in range(joins):
                for system in ("agent", "stock") if j % 2 == 0 else ("stock", "agent"):
                    time.sleep(rng.uniform(0.2, clip.gop_s))  # a random point of the GOP
                    joined = clients[system].join(1)
                    clients[system].leave(1)
                    ttff = joined["ttff_s"][0]
                    samples[system].append(ttff if ttff is not None else float("inf"))
                    signaling[system].append(joined["connected_s"][0] or float("nan"))
                    settings.log(f"ttff GOP {clip.gop_s:g} s {system} join {j + 1}/{joins}: {ttff} s")
        a, s = summary(samples["agent"]), summary(samples["stock"])
        met = met and a["max"] is not None and a["max"] <= TARGET_TTFF_S
        rows.append([f"{clip.gop_s:g} s", fmt(a, 3), f"{a['max']:.3f}", fmt(s, 3), f"{s['max']:.3f}",
                     fmt(summary(signaling["agent"]), 3), fmt(summary(signaling["stock"]), 3),
                     fmt(ratio(a["median"], s["median"]), 2)])
        data.append({"gop_s": clip.gop_s, "agent": a, "stock": s, "joins": joins})
    return {
        "name": "ttff",
        "title": "4. Time to first frame for a new viewer",
        "target": f"≤ {TARGET_TTFF_S:g} s at every GOP (every join, not only the median)",
        "met": met,
        "tables": [{
            "columns": ["GOP", "agent s", "agent worst s", "stock aiortc s", "stock worst s",
                        "agent ICE+DTLS connected s", "stock ICE+DTLS connected s", "agent / stock"],
            "rows": rows,
        }],
        "notes": [
            f"{joins} joins per GOP and system at random points of the GOP, alternating agent and stock.",
            "From the start of the viewer's offer to the arrival of the last RTP packet of its first keyframe "
            "(the first picture a browser can show).",
        ],
        "data": data,
    }
