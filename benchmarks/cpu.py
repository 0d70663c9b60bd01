"""CPU and memory of processes, as ``top`` shows them.

CPU is always a process's own user + system time over wall time, one core = 100 %, read from /proc
through psutil. Children are counted where a reference spawns them (the Frigate-style reader's ffmpeg
processes).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import psutil


def cpu_seconds(process: psutil.Process, children: bool = False) -> float:
    """user + system seconds of ``process`` (all its threads), and of its live children if asked."""
    total = 0.0
    procs = [process]
    if children:
        with contextlib.suppress(psutil.Error):
            procs += process.children(recursive=True)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


class CpuWindow:
    """CPU of several named processes over one wall-clock window, as % of one core."""

    def __init__(self, groups: dict[str, tuple[psutil.Process, bool]]) -> None:
        self.groups = groups
        self._before: dict[str, float] = {}
        self._started = 0.0
        self._machine_before: Any = None

    def __enter__(self) -> CpuWindow:
        self._machine_before = psutil.cpu_times()
        self._started = time.monotonic()
        self._before = {name: cpu_seconds(proc, kids) for name, (proc, kids) in self.groups.items()}
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.monotonic() - self._started
        after = {name: cpu_seconds(proc, kids) for name, (proc, kids) in self.groups.items()}
        self.percent = {name: 100.0 * (after[name] - self._before[name]) / self.wall for name in self.groups}
        machine = psutil.cpu_times()
        busy = sum(getattr(machine, f) - getattr(self._machine_before, f) for f in ("user", "system", "nice"))
        idle = sum(getattr(machine, f) - getattr(self._machine_before, f) for f in ("idle", "iowait"))
        self.machine_percent = 100.0 * busy / (busy + idle) if busy + idle > 0 else 0.0  # of all cores


def measure(groups: dict[str, tuple[psutil.Process, bool]], seconds: float) -> CpuWindow:
    with CpuWindow(groups) as window:
        time.sleep(seconds)
    return window


def rss_mb(process: psutil.Process) -> float:
    return process.memory_info().rss / 2**20
