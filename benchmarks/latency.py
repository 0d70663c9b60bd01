"""(5) Added latency: from a packet's arrival from the camera (the demuxer returning it in the ingest
thread) to its RTP packets leaving for a viewer (handed to the socket), measured inside the real agent
by ``benchmarks.probed_agent``, with 1 and with 10 viewers of a 1080p30 camera.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.common import ProbedAgent, Settings, Simulator, Viewers, camera_clip, fmt, percentile, summary

TARGET_P50_MS = 5.0
TARGET_P99_MS = 30.0


def run(settings: Settings) -> dict[str, Any]:
    clip = camera_clip(settings, "h264")
    counts = (1, 2) if settings.quick else (1, 10)
    reps = max(1, settings.reps)
    pooled: dict[int, dict[str, list[float]]] = {n: {"first": [], "last": []} for n in counts}
    per_window: dict[int, list[dict[str, float | None]]] = {n: [] for n in counts}
    with Simulator(settings, clip.make(settings), clip.fps) as sim, \
            ProbedAgent(settings, {"cam1": sim.url}, snapshot_interval_s=2.0) as agent, \
            Viewers(settings, agent.url + "/whep/cam1") as viewers:
        for rep in range(reps):
            joined = 0
            for count in counts:
                viewers.join(count - joined)
                joined = count
                time.sleep(settings.settle_s)
                agent.mark()
                time.sleep(settings.window_s)
                document = agent.read()
                first = [1000 * v for v in document["first_s"]]
                last = [1000 * v for v in document["last_s"]]
                pooled[count]["first"] += first
                pooled[count]["last"] += last
                per_window[count].append({"p50": percentile(last, 50), "p99": percentile(last, 99)})
                settings.log(f"latency N={count} rep {rep + 1}/{reps}: last packet p50 {percentile(last, 50)} ms, "
                             f"p99 {percentile(last, 99)} ms ({len(last)} frames)")
            viewers.leave(joined)
            time.sleep(0.5)
    rows, data, met = [], [], True
    for count in counts:
        first, last = pooled[count]["first"], pooled[count]["last"]
        p50, p99 = percentile(last, 50), percentile(last, 99)
        met = met and p50 is not None and p99 is not None and p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS
        rows.append([count, len(last), fmt(percentile(first, 50), 2), fmt(percentile(first, 99), 2), fmt(p50, 2),
                     fmt(p99, 2), fmt(max(last) if last else None, 1),
                     fmt(summary(w["p50"] for w in per_window[count] if w["p50"] is not None), 2),
                     fmt(summary(w["p99"] for w in per_window[count] if w["p99"] is not None), 2)])
        data.append({"viewers": count, "frames": len(last), "first_p50_ms": percentile(first, 50),
                     "first_p99_ms": percentile(first, 99), "last_p50_ms": p50, "last_p99_ms": p99,
                     "max_ms": max(last) if last else None})
    return {
        "name": "latency",
        "title": "5. Added latency, camera packet in → RTP out",
        "target": f"p50 ≤ {TARGET_P50_MS:g} ms, p99 ≤ {TARGET_P99_MS:g} ms (whole frame sent)",
        "met": met,
        "tables": [{
            "columns": ["viewers", "frames measured", "first RTP packet p50 ms", "first p99 ms",
                        "whole frame sent p50 ms", "whole frame p99 ms", "max ms", "p50 per window ms",
                        "p99 per window ms"],
            "rows": rows,
        }],
        "notes": [
            f"Camera: {clip.describe()}; the agent's default pipeline (a snapshot every 2 s) is running.",
            f"{reps} windows of {settings.window_s:g} s per viewer count, every frame of every viewer counted; "
            "percentiles over all of them pooled, and per window (median and range).",
            "Arrival is `Packet.arrival` (monotonic clock in the ingest thread when the demuxer returned the "
            "packet); leaving is when aiortc's `RTCDtlsTransport._send_rtp` returned for that RTP packet.",
        ],
        "data": data,
    }
