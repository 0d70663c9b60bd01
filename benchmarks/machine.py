"""What the machine and the software under test are, for the report."""

from __future__ import annotations

import contextlib
import platform
import subprocess
from pathlib import Path

import psutil

from benchmarks.processes import have_mosquitto
from benchmarks.settings import ROOT


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    return out.strip().splitlines()[0] if out.strip() else "not found"


def machine_info() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import aiortc
    import av
    import numpy

    os_name = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    return {
        "cpu": model,
        "cores": str(psutil.cpu_count(logical=True)),
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "os": f"{os_name}, kernel {platform.release()}",
        "python": platform.python_version(),
        "av (PyAV)": f"{av.__version__} (FFmpeg libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))})",
        "aiortc": aiortc.__version__,
        "numpy": numpy.__version__,
        "ffmpeg": _first_line(["ffmpeg", "-version"]).split(" Copyright")[0],
        "gstreamer": _first_line(["gst-launch-1.0", "--version"]),
        "mosquitto": "present" if have_mosquitto() else "absent",
        "edgeagent commit": _first_line(["git", "-C", str(ROOT), "describe", "--always", "--dirty"]),
    }
