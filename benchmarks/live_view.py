"""Live view figures: time to first frame, agent CPU per passthrough viewer, CPU of one shared transcode.

Runs everything on this machine: simulated cameras (GStreamer, serving pre-encoded 1080p clips without
re-encoding so the camera costs next to nothing), the real agent process, and headless Chromium as the
viewer. CPU is the agent process's own (user + system time over wall time, one core = 100 %).

    .venv/bin/python benchmarks/live_view.py [--seconds 20] [--trials 5]

Clips are made once with ffmpeg into benchmarks/work/ (1080p25, 4 Mbit/s H.264 with 1 s and 10 s GOPs,
3 Mbit/s H.265).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.browser import chromium, install_viewer, start_viewer, stop_viewer, viewer_stats, wait_until  # noqa: E402

WORK = ROOT / "benchmarks" / "work"
SIMULATOR = ROOT / "edgeagent" / "simulator" / "rtsp_camera.py"
SOURCE = "testsrc2=size=1920x1080:rate=25,noise=alls=12:allf=t"
CLIPS = {
    "h264_gop1": ["-c:v", "libx264", "-preset", "superfast", "-tune", "zerolatency", "-g", "25", "-bf", "0",
                  "-b:v", "4M", "-maxrate", "4M", "-bufsize", "4M", "-x264-params", "slices=1"],
    "h264_gop10": ["-c:v", "libx264", "-preset", "superfast", "-tune", "zerolatency", "-g", "250", "-bf", "0",
                   "-b:v", "4M", "-maxrate", "4M", "-bufsize", "4M", "-x264-params", "slices=1"],
    "h265_gop1": ["-c:v", "libx265", "-preset", "ultrafast", "-g", "25", "-bf", "0", "-b:v", "3M",
                  "-x265-params", "log-level=error:bframes=0:repeat-headers=1"],
}
TOKEN = "benchmark-token-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_clips() -> dict[str, Path]:
    WORK.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, args in CLIPS.items():
        path = WORK / f"{name}.{'265' if 'h265' in name else '264'}"
        if not path.exists():
            print(f"making {path.name} ...", flush=True)
            subprocess.run(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", SOURCE, "-t", "30",
                 *args, str(path)],
                check=True,
            )
        paths[name] = path
    return paths


def start_camera(clip: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    process = subprocess.Popen(
        ["/usr/bin/python3", str(SIMULATOR), "--port", str(port), "--file", str(clip)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )
    line = process.stdout.readline().strip() if process.stdout else ""
    if not line.startswith("READY "):
        raise RuntimeError(f"camera simulator did not start: {line!r}")
    return process, line.split()[1]


def start_agent(workdir: Path, cameras: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    (workdir / "token").write_text(TOKEN + "\n")
    os.chmod(workdir / "token", 0o600)
    config = {
        "agent": {"id": "bench", "state_dir": str(workdir / "state")},
        "http": {"listen": f"127.0.0.1:{port}", "token_file": str(workdir / "token")},
        "webrtc": {"host_addresses": ["127.0.0.1"], "max_viewers_per_camera": 8},
        "cameras": {name: {"url": url, "snapshot": {"interval_s": 3600}} for name, url in cameras.items()},
    }
    (workdir / "agent.yaml").write_text(json.dumps(config))
    log = open(workdir / "agent.log", "w")  # noqa: SIM115 - lives as long as the agent
    process = subprocess.Popen(
        [sys.executable, "-m", "edgeagent", "run", "-c", str(workdir / "agent.yaml")],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def cameras_online() -> bool:
        try:
            request = urllib.request.Request(url + "/cameras", headers={"Authorization": f"Bearer {TOKEN}"})
            with urllib.request.urlopen(request, timeout=2) as response:
                document = json.load(response)
            return all(camera["status"] == "online" for camera in document["cameras"])
        except OSError:
            return False

    wait_until(cameras_online, 30, "the agent with every camera online", interval=0.3)
    return process, url


def cpu_percent(process: psutil.Process, seconds: float) -> float:
    before = process.cpu_times()
    started = time.monotonic()
    time.sleep(seconds)
    after = process.cpu_times()
    busy = (after.user - before.user) + (after.system - before.system)
    return 100.0 * busy / (time.monotonic() - started)


def live_stats(url: str, camera: str) -> dict:
    request = urllib.request.Request(url + "/cameras", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        document = json.load(response)
    return next(c for c in document["cameras"] if c["name"] == camera)["health"]["live"]


def caught_up(url: str, camera: str) -> dict:
    """The camera's live figures once its newest viewer has been sent the whole cached GOP."""
    return wait_until(lambda: (s := live_stats(url, camera))["time_to_live_s"] and s, 20, "the cached GOP sent")


def first_frame_ms(driver, viewer: str) -> float:
    stats = wait_until(lambda: (s := viewer_stats(driver, viewer)) and s.get("firstFrameMs") and s, 20, "a frame")
    return stats["firstFrameMs"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20, help="length of each CPU measurement")
    parser.add_argument("--trials", type=int, default=5, help="viewers opened per time-to-first-frame figure")
    args = parser.parse_args()
    clips = make_clips()
    processes: list[subprocess.Popen[str]] = []
    results: dict[str, object] = {}
    try:
        urls = {}
        for name, clip in clips.items():
            process, urls[name] = start_camera(clip)
            processes.append(process)
        workdir = Path(tempfile.mkdtemp(prefix="live-bench-"))
        agent, url = start_agent(workdir, urls)
        processes.append(agent)
        agent_ps = psutil.Process(agent.pid)
        time.sleep(3)
        results["agent_cpu_no_viewer_pct"] = round(cpu_percent(agent_ps, args.seconds), 1)

        with chromium(workdir / "profile") as driver:
            driver.get(url + "/healthz")
            install_viewer(driver)
            # Time to first frame: a viewer opened on a camera already streaming, measured in the page from
            # the start of the WHEP exchange to the first frame presented (requestVideoFrameCallback).
            for camera in ("h264_gop1", "h264_gop10"):
                page, server, live = [], [], []
                for trial in range(args.trials):
                    viewer = f"{camera}-{trial}"
                    assert start_viewer(driver, viewer, camera, TOKEN) == "ok"
                    page.append(first_frame_ms(driver, viewer))
                    stats = caught_up(url, camera)
                    server.append(stats["time_to_first_frame_s"] * 1000)
                    live.append(stats["time_to_live_s"] * 1000)
                    stop_viewer(driver, viewer, TOKEN)
                    time.sleep(0.7)  # a different point of the GOP each time
                results[f"ttff_{camera}_page_ms"] = {
                    "median": round(statistics.median(page)), "max": round(max(page)), "all": [round(v) for v in page]
                }
                results[f"ttff_{camera}_agent_ms_median"] = round(statistics.median(server))
                results[f"gop_sent_{camera}_agent_ms"] = {
                    "median": round(statistics.median(live)), "max": round(max(live))
                }

            # CPU per passthrough viewer (1080p25, 4 Mbit/s).
            for count in (1, 2):
                for index in range(count):
                    assert start_viewer(driver, f"pt-{count}-{index}", "h264_gop1", TOKEN) == "ok"
                for index in range(count):
                    first_frame_ms(driver, f"pt-{count}-{index}")
                time.sleep(2)
                results[f"agent_cpu_{count}_passthrough_pct"] = round(cpu_percent(agent_ps, args.seconds), 1)
                for index in range(count):
                    stop_viewer(driver, f"pt-{count}-{index}", TOKEN)
                time.sleep(2)

            # One shared transcode (H.265 1080p → H.264 1280 wide), then a second viewer on it.
            for count in (1, 2):
                for index in range(count):
                    assert start_viewer(driver, f"tc-{count}-{index}", "h265_gop1", TOKEN) == "ok"
                for index in range(count):
                    first_frame_ms(driver, f"tc-{count}-{index}")
                time.sleep(2)
                results[f"agent_cpu_{count}_transcode_viewers_pct"] = round(cpu_percent(agent_ps, args.seconds), 1)
                stats = live_stats(url, "h265_gop1")
                results[f"transcode_{count}_viewers"] = {
                    "encoders_opened": stats["transcode"]["encoders_opened"],
                    "transcoders_started": stats["transcoders_started"],
                }
                for index in range(count):
                    stop_viewer(driver, f"tc-{count}-{index}", TOKEN)
                time.sleep(2)
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
