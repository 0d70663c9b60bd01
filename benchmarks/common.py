"""The names benchmarks imported from here before common.py was split by concept; new code imports from the
modules themselves: settings (paths, Settings), figures (summary, fmt, ratio, percentile), cpu (CPU and
memory of processes), clips (pre-encoded inputs), processes (ports, polling, simulator, mosquitto), agents
(the agent as a process), clients (WebRTC viewers, stock aiortc), machine (what the report says it ran on).
Kept so that branches written against the old module still import."""

from benchmarks.agents import FIX_ENV, PROPOSED_ENV, Agent, ProbedAgent
from benchmarks.clients import StockServer, Viewers
from benchmarks.clips import Clip, camera_clip
from benchmarks.cpu import CpuWindow, cpu_seconds, measure, rss_mb
from benchmarks.figures import fmt, percentile, ratio, summary
from benchmarks.machine import machine_info
from benchmarks.processes import (
    Mosquitto,
    Simulator,
    free_port,
    have_mosquitto,
    popen,
    python_env,
    stop_process,
    wait_until,
)
from benchmarks.settings import BENCH, ROOT, SIMULATOR, SYSTEM_PYTHON, TOKEN, WORK, Settings

__all__ = [
    "BENCH", "FIX_ENV", "PROPOSED_ENV", "ROOT", "SIMULATOR", "SYSTEM_PYTHON", "TOKEN", "WORK", "Agent", "Clip",
    "CpuWindow", "Mosquitto", "ProbedAgent", "Settings", "Simulator", "StockServer", "Viewers", "camera_clip",
    "cpu_seconds", "fmt", "free_port", "have_mosquitto", "machine_info", "measure", "percentile", "popen",
    "python_env", "ratio", "rss_mb", "stop_process", "summary", "wait_until",
]  # fmt: skip
