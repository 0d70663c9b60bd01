"""(10) Recording: CPU per recorded camera against ``ffmpeg -c copy -f segment -segment_format mp4`` on the same
cameras in the same run, bytes written to the disk per byte of video, and what a SIGKILL loses.

The recorder runs as its own process (``python -m edgeagent.record.standalone``: the agent's ingest, hub and
recording service, nothing else), once recording and once with ``--ingest-only``, so that what recording
adds is measured apart from ingest. Disk writes come from ``/proc/<pid>/io`` (``write_bytes``: what the
process sent to the block layer, the index and its WAL included; the file system's journal is not).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from benchmarks.clips import camera_clip
from benchmarks.cpu import measure
from benchmarks.figures import fmt, ratio, summary
from benchmarks.processes import Simulator, popen, python_env, stop_process, wait_until
from benchmarks.settings import WORK, Settings

TARGET_ADDED_PCT = 0.3  # of one core per camera, on top of ingest
TARGET_RATIO = 1.5  # against ffmpeg doing the same job
TARGET_AMPLIFICATION = 1.03
TARGET_LOSS_S = 1.0


def segment_argv(url: str, out_dir: Path) -> list[str]:
    return ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-rtsp_transport", "tcp", "-i", url,
            "-c", "copy", "-f", "segment", "-segment_format", "mp4", "-segment_time", "60", "-reset_timestamps",
            "1", str(out_dir / "%05d.mp4")]  # fmt: skip


def recorder_argv(urls: list[str], out_dir: Path, ingest_only: bool = False, segment_s: float = 60) -> list[str]:
    cameras = [f"cam{i:02d}={url}" for i, url in enumerate(urls)]
    extra = ["--ingest-only"] if ingest_only else []
    return [sys.executable, "-m", "edgeagent.record.standalone", "--dir", str(out_dir), "--segment-s",
            str(segment_s), *extra, *cameras]  # fmt: skip


def write_bytes(process: psutil.Process) -> int:
    return int(process.io_counters().write_bytes)


def media_bytes(root: Path) -> int:
    """Bytes of video in the recorded files (sample data only: mdat payloads)."""
    total = 0
    for path in root.rglob("*.mp4"):
        with open(path, "rb") as file:
            offset, size = 0, path.stat().st_size
            while offset + 8 <= size:
                file.seek(offset)
                header = file.read(16)
                box = int.from_bytes(header[:4], "big")
                head = 8
                if box == 1:
                    box, head = int.from_bytes(header[8:16], "big"), 16
                if box < 8:
                    break
                if header[4:8] == b"mdat":
                    total += min(box, size - offset) - head
                offset += box
    return total


def run_recorder(settings: Settings, sim: Simulator, count: int, ingest_only: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-rec-", dir=WORK) as tmp:
        out = Path(tmp)
        argv = recorder_argv([sim.url] * count, out, ingest_only)
        settings.record(recorder_argv(["URL"], Path("DIR"), ingest_only))
        with popen(settings, argv, stdout=subprocess.PIPE, text=True, env=python_env()) as proc:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "RECORDING"
            ps = psutil.Process(proc.pid)
            time.sleep(settings.settle_s + 1.5)
            written_before = write_bytes(ps)
            media_before = media_bytes(out)
            window = measure({"recorder": (ps, False), "camera": (sim.ps, False)}, settings.window_s)
            written = write_bytes(ps) - written_before
            media = media_bytes(out) - media_before
            stop_process(proc)
    return {"cpu": window.percent["recorder"], "camera_cpu": window.percent["camera"],
            "machine": window.machine_percent, "written": written, "media": media}  # fmt: skip


def run_ffmpeg(settings: Settings, sim: Simulator, count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-seg-", dir=WORK) as tmp, contextlib.ExitStack() as stack:
        settings.record(segment_argv("URL", Path("DIR")))
        procs = []
        for index in range(count):
            out = Path(tmp) / str(index)
            out.mkdir()
            procs.append(stack.enter_context(popen(settings, segment_argv(sim.url, out), stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL)))  # fmt: skip
        time.sleep(settings.settle_s + 1.5)
        groups = {f"p{i}": (psutil.Process(p.pid), False) for i, p in enumerate(procs)}
        groups["camera"] = (sim.ps, False)
        written_before = sum(write_bytes(g[0]) for k, g in groups.items() if k != "camera")
        window = measure(groups, settings.window_s)
        written = sum(write_bytes(g[0]) for k, g in groups.items() if k != "camera") - written_before
    cpu = sum(v for k, v in window.percent.items() if k != "camera")
    return {"cpu": cpu, "machine": window.machine_percent, "written": written}


def kill_once(settings: Settings, sim: Simulator, rng: random.Random) -> tuple[float, bool]:
    """Record, SIGKILL mid-segment, repair: seconds lost before the kill, and whether the rest plays."""
    from edgeagent.record.index import RecordingIndex
    from edgeagent.record.repair import repair
    from edgeagent.record.service import INDEX_NAME

    with tempfile.TemporaryDirectory(prefix="bench-kill-", dir=WORK) as tmp:
        out = Path(tmp)
        argv = recorder_argv([sim.url], out)
        with popen(settings, argv, stdout=subprocess.PIPE, text=True, env=python_env()) as proc:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "RECORDING"
            wait_until(lambda: list(out.rglob("*.mp4")), 20, "a segment file")
            time.sleep(rng.uniform(3.0, 8.0) if not settings.quick else rng.uniform(2.0, 3.0))
            killed = datetime.now(UTC)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        index = RecordingIndex(out / INDEX_NAME)
        segments = repair(index, out)
        index.close()
        if not segments:
            return float("inf"), False
        segment = segments[-1]
        errors = subprocess.run(["ffmpeg", "-v", "error", "-i", str(segment.path), "-f", "null", "-"],
                                capture_output=True, text=True, timeout=60).stderr.strip()  # fmt: skip
        return (killed - segment.end).total_seconds(), errors == ""


def run(settings: Settings) -> dict[str, Any]:
    clip = camera_clip(settings, "h264")
    path = clip.make(settings)
    default = "1" if settings.quick else "1,4"
    counts = [int(c) for c in os.environ.get("BENCH_RECORDING_CAMERAS", default).split(",")]
    kills = 2 if settings.quick else 10
    reps = max(1, settings.reps)
    raw: dict[str, dict[int, list[dict[str, Any]]]] = {m: {k: [] for k in counts} for m in ("record", "ingest",
                                                                                           "ffmpeg")}  # fmt: skip
    losses: list[float] = []
    clean = 0
    WORK.mkdir(parents=True, exist_ok=True)
    with Simulator(settings, path, clip.fps) as sim:
        for rep in range(reps):
            for count in counts:
                order = ["record", "ingest", "ffmpeg"] if rep % 2 == 0 else ["ffmpeg", "ingest", "record"]
                for method in order:
                    if method == "ffmpeg":
                        result = run_ffmpeg(settings, sim, count)
                    else:
                        result = run_recorder(settings, sim, count, ingest_only=method == "ingest")
                    raw[method][count].append(result)
                    settings.log(f"recording K={count} {method} rep {rep + 1}/{reps}: {result['cpu']:.2f} %")
        rng = random.Random(9)
        for number in range(kills):
            lost, plays = kill_once(settings, sim, rng)
            losses.append(lost)
            clean += plays
            settings.log(f"recording kill {number + 1}/{kills}: lost {lost:.2f} s, plays: {plays}")

    rows, series, met = [], [], True
    for count in counts:
        record = summary(r["cpu"] for r in raw["record"][count])
        ingest = summary(r["cpu"] for r in raw["ingest"][count])
        ffmpeg = summary(r["cpu"] for r in raw["ffmpeg"][count])
        added = summary((r["cpu"] - i["cpu"]) / count for r, i in zip(raw["record"][count], raw["ingest"][count],
                                                                      strict=True))  # fmt: skip
        amplification = summary(r["written"] / r["media"] for r in raw["record"][count] if r["media"])
        ffmpeg_written = summary(r["written"] / 1e6 for r in raw["ffmpeg"][count])
        total_ratio = ratio(record["median"], ffmpeg["median"])
        met = met and added["median"] is not None and added["median"] <= TARGET_ADDED_PCT
        met = met and total_ratio is not None and total_ratio <= TARGET_RATIO
        met = met and amplification["median"] is not None and amplification["median"] <= TARGET_AMPLIFICATION
        rows.append([count, fmt(record, 2), fmt(ingest, 2), fmt(added, 3), fmt(ffmpeg, 2), fmt(total_ratio, 2),
                     fmt(amplification, 4), fmt(summary(r["written"] / 1e6 for r in raw["record"][count]), 1),
                     fmt(ffmpeg_written, 1)])  # fmt: skip
        series.append({"cameras": count, "record": record, "ingest": ingest, "added_per_camera": added,
                       "ffmpeg": ffmpeg, "ratio": total_ratio, "amplification": amplification})  # fmt: skip
    loss = summary(losses)
    met = met and loss["max"] is not None and loss["max"] <= TARGET_LOSS_S and clean == kills
    return {
        "name": "recording",
        "title": "10. Recording",
        "target": (f"recording adds ≤ {TARGET_ADDED_PCT:g} % of a core per {clip.describe()} camera and costs ≤ "
                   f"{TARGET_RATIO:g} × ffmpeg's segment muxer; ≤ {TARGET_AMPLIFICATION:g} bytes written per byte "
                   f"of video; a SIGKILL loses ≤ {TARGET_LOSS_S:g} s"),
        "met": met,
        "tables": [
            {"columns": ["cameras", "recorder CPU % (ingest + record)", "same process, ingest only CPU %",
                         "recording adds, % per camera", "ffmpeg -f segment CPU % (sum)", "recorder / ffmpeg",
                         "bytes written per byte of video", "recorder MB written in window",
                         "ffmpeg MB written in window"],
             "rows": rows},
            {"columns": ["SIGKILLs", "seconds lost before the kill", "files that play cleanly after repair"],
             "rows": [[kills, fmt(loss, 2), f"{clean}/{kills}"]]},
        ],  # fmt: skip
        "notes": [
            f"Input: {clip.describe()}, one simulator; every camera is its own RTSP connection.",
            f"{reps} repetitions, methods interleaved; each figure a {settings.window_s:g} s window after "
            f"{settings.settle_s + 1.5:g} s.",
            "Bytes written: the recorder process's write_bytes in /proc over the window (segment files, index, "
            "WAL), over the video bytes (mdat payloads) recorded in it; the file system journal is not counted.",
            "Loss at SIGKILL: wall-clock time of the kill minus the end of the repaired segment (the recorder's "
            "timeline is the packets' arrival), over kills at random points 3 to 8 s into a segment.",
        ],
        "data": {"series": series, "raw": raw, "kills": {"lost_s": loss, "clean": clean, "kills": kills}},
    }
