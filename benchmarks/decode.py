"""(1) Decode: edgeagent's decode path against ``ffmpeg -threads N -i CLIP -f null -``.

edgeagent decodes as its transcoder and snapshotter do: the camera's Annex B access units, as bytes (what
the hub holds), each wrapped in ``av.Packet`` and fed to a ``CodecContext`` created by name, with
``thread_count = N`` (and ``thread_type = "AUTO"`` when N > 1, as one busy stream would use). The packets
are read into memory first, so only decoding is timed. FFmpeg's figure is the ``rtime`` its
``-benchmark`` prints: the decode loop without process start and probing.
"""

from __future__ import annotations

import re
import subprocess
import time
from typing import Any

import av

from benchmarks.clips import camera_clip
from benchmarks.figures import fmt, ratio, summary
from benchmarks.settings import Settings

TARGET = 0.95


def read_packets(path: str) -> list[bytes]:
    with av.open(path) as container:
        return [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]


def edgeagent_decode(codec: str, packets: list[bytes], threads: int) -> dict[str, float]:
    context = av.CodecContext.create("h264" if codec == "h264" else "hevc", "r")
    context.thread_count = threads
    if threads > 1:
        context.thread_type = "AUTO"
    frames = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for data in packets:
        frames += len(context.decode(av.Packet(data)))
    frames += len(context.decode(None))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"frames": frames, "fps": frames / wall, "cpu_pct": 100 * cpu / wall}


def ffmpeg_decode(settings: Settings, path: str, threads: int) -> dict[str, float]:
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-benchmark", "-threads", str(threads), "-i", path, "-f", "null",
            "-"]
    settings.record(argv)
    err = subprocess.run(argv, capture_output=True, text=True, check=True).stderr
    bench = re.search(r"bench: utime=([\d.]+)s stime=([\d.]+)s rtime=([\d.]+)s", err)
    frames = re.findall(r"frame=\s*(\d+)", err)
    if bench is None or not frames:
        raise RuntimeError(f"unexpected ffmpeg output: {err[-500:]}")
    utime, stime, rtime = (float(g) for g in bench.groups())
    return {"frames": int(frames[-1]), "fps": int(frames[-1]) / rtime, "cpu_pct": 100 * (utime + stime) / rtime}


def run(settings: Settings) -> dict[str, Any]:
    clips = {codec: camera_clip(settings, codec) for codec in ("h264", "h265")}
    paths = {codec: str(clip.make(settings)) for codec, clip in clips.items()}
    packets = {codec: read_packets(path) for codec, path in paths.items()}
    cases = [(codec, threads) for codec in clips for threads in (1, 2)]
    samples: dict[tuple[str, int], dict[str, list[dict[str, float]]]] = {
        case: {"edgeagent": [], "ffmpeg": []} for case in cases
    }
    reps = max(1, settings.reps)
    for rep in range(reps):
        for codec, threads in cases:
            # Interleaved, alternating which goes first, so drift on the machine hits both alike.
            order = ("edgeagent", "ffmpeg") if rep % 2 == 0 else ("ffmpeg", "edgeagent")
            for who in order:
                if who == "edgeagent":
                    result = edgeagent_decode(codec, packets[codec], threads)
                else:
                    result = ffmpeg_decode(settings, paths[codec], threads)
                samples[(codec, threads)][who].append(result)
            settings.log(f"decode {codec} threads={threads} rep {rep + 1}/{reps}: "
                         f"edgeagent {samples[(codec, threads)]['edgeagent'][-1]['fps']:.0f} fps, "
                         f"ffmpeg {samples[(codec, threads)]['ffmpeg'][-1]['fps']:.0f} fps")

    rows, data, met = [], [], True
    for codec, threads in cases:
        mine = samples[(codec, threads)]["edgeagent"]
        ref = samples[(codec, threads)]["ffmpeg"]
        fps_e, fps_f = summary(r["fps"] for r in mine), summary(r["fps"] for r in ref)
        per_rep = summary(a["fps"] / b["fps"] for a, b in zip(mine, ref, strict=True))
        cpu_e, cpu_f = summary(r["cpu_pct"] for r in mine), summary(r["cpu_pct"] for r in ref)
        frames_ok = all(r["frames"] == clips[codec].frames for r in mine + ref)
        r = ratio(fps_e["median"], fps_f["median"])
        met = met and r is not None and r >= TARGET and frames_ok
        rows.append([clips[codec].describe(), threads, fmt(fps_e, 0), fmt(fps_f, 0), fmt(r, 2), fmt(per_rep, 2),
                     fmt(cpu_e, 0), fmt(cpu_f, 0), "yes" if frames_ok else "NO"])
        data.append({"codec": codec, "threads": threads, "edgeagent_fps": fps_e, "ffmpeg_fps": fps_f, "ratio": r,
                     "ratio_per_rep": per_rep, "edgeagent_cpu_pct": cpu_e, "ffmpeg_cpu_pct": cpu_f,
                     "all_frames": frames_ok})
    return {
        "name": "decode",
        "title": "1. Decode throughput",
        "target": f"edgeagent / ffmpeg frames per second ≥ {TARGET}",
        "met": met,
        "tables": [{
            "columns": ["clip", "threads", "edgeagent fps", "ffmpeg fps", "ratio (of medians)", "ratio per rep",
                        "edgeagent CPU %", "ffmpeg CPU %", "every frame decoded"],
            "rows": rows,
        }],
        "notes": [
            f"{reps} repetitions, interleaved; each decodes the whole clip ({clips['h264'].frames} frames).",
            "CPU % is user + system time over wall time of the decode (100 % = one core).",
        ],
        "data": data,
    }
