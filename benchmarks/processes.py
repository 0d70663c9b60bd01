"""Child processes of a benchmark: ports, polling, start and stop, the camera simulator and mosquitto."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil

from benchmarks.settings import ROOT, SIMULATOR, SYSTEM_PYTHON, Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


def stop_process(process: subprocess.Popen[Any] | None, timeout_s: float = 5.0) -> None:
    """SIGTERM to the process group we started, SIGKILL if it lingers."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout_s)


def python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


@contextlib.contextmanager
def popen(settings: Settings, argv: list[str], **kwargs: Any) -> Iterator[subprocess.Popen[Any]]:
    settings.record(argv)
    kwargs.setdefault("start_new_session", True)
    process = subprocess.Popen(argv, **kwargs)
    try:
        yield process
    finally:
        stop_process(process)



class Simulator:
    """helper's GStreamer camera simulator looping a clip without re-encoding; one shared pipeline serves
    every client of the path."""

    def __init__(self, settings: Settings, clip: Path, fps: int, port: int | None = None) -> None:
        self.settings = settings
        self.clip = clip
        self.fps = fps
        self.port = port or free_port()
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> Simulator:
        argv = [SYSTEM_PYTHON, str(SIMULATOR), "--port", str(self.port), "--fps", str(self.fps),
                "--file", str(self.clip)]
        self.settings.record(argv)
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("READY "):
            stop_process(self.process)
            raise RuntimeError(f"camera simulator did not start (said {line!r})")
        self.url = line.split()[1]
        return self

    @property
    def ps(self) -> psutil.Process:
        assert self.process is not None
        return psutil.Process(self.process.pid)

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Mosquitto:
    """A throw-away broker so the agent runs its whole default pipeline (health and snapshots on MQTT)."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.settings = settings
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Mosquitto:
        conf = self.workdir / "mosquitto.conf"
        user = "user root\n" if os.geteuid() == 0 else ""
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n{user}"
        )
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

        def listening() -> bool:
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(listening, 10, "mosquitto")
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self.process)


def have_mosquitto() -> bool:
    return shutil.which("mosquitto") is not None or Path("/usr/sbin/mosquitto").exists()
