"""What every benchmark needs: settings, clips, the camera simulator, the agent as a process, CPU figures.

CPU is always a process's own user + system time over wall time, one core = 100 %, read from /proc
through psutil, so every figure is comparable with ``top``. Children are counted where a reference
spawns them (the Frigate-style reader's ffmpeg processes).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
WORK = BENCH / "work"  # clips and scratch files; git-ignored
SIMULATOR = ROOT / "edgeagent" / "simulator" / "rtsp_camera.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, which has PyGObject for the GStreamer simulator
TOKEN = "benchmark-token-0123456789abcdef"


# -- settings and bookkeeping -------------------------------------------------------------------------


@dataclass
class Settings:
    quick: bool = False
    reps: int = 3
    window_s: float = 10.0  # length of one CPU measurement
    settle_s: float = 3.0  # after start-up, before measuring
    out_dir: Path = BENCH
    commands: list[str] = field(default_factory=list)  # every external command, as run
    verbose: bool = True

    def log(self, message: str) -> None:
        if self.verbose:
            print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def record(self, argv: Iterable[str]) -> None:
        """Remember a command for RESULTS.md (paths shortened to the repository)."""
        text = " ".join(shlex.quote(str(a)) for a in argv).replace(str(ROOT) + "/", "")
        if text not in self.commands:
            self.commands.append(text)


def summary(values: Iterable[float]) -> dict[str, Any]:
    items = [float(v) for v in values]
    if not items:
        return {"median": None, "min": None, "max": None, "n": 0, "values": []}
    return {
        "median": statistics.median(items),
        "min": min(items),
        "max": max(items),
        "n": len(items),
        "values": [round(v, 4) for v in items],
    }


def fmt(s: dict[str, Any] | float | None, digits: int = 1) -> str:
    """``median (min–max)`` of a summary, or a plain number."""
    if s is None:
        return "–"
    if isinstance(s, int | float):
        return f"{s:.{digits}f}"
    if s.get("median") is None:
        return "–"
    if s["n"] == 1 or s["min"] == s["max"]:
        return f"{s['median']:.{digits}f}"
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


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


# -- CPU ---------------------------------------------------------------------------------------------


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


# -- clips ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """A pre-encoded clip the benchmark makes itself: testsrc2 with motion and sensor-like noise."""

    codec: str  # "h264" or "h265"
    width: int
    height: int
    fps: int
    gop_s: float
    seconds: float
    kbps: int

    @property
    def name(self) -> str:
        size = f"{self.width}x{self.height}_{self.fps}fps"
        return f"{self.codec}_{size}_gop{self.gop_s:g}s_{self.kbps}k_{self.seconds:g}s"

    @property
    def path(self) -> Path:
        return WORK / f"{self.name}.{'264' if self.codec == 'h264' else '265'}"

    @property
    def frames(self) -> int:
        return round(self.seconds * self.fps)

    def ffmpeg_args(self) -> list[str]:
        gop = max(1, round(self.gop_s * self.fps))
        rate = ["-b:v", f"{self.kbps}k", "-maxrate", f"{self.kbps}k", "-bufsize", f"{self.kbps}k"]
        source = f"testsrc2=size={self.width}x{self.height}:rate={self.fps},noise=alls=8:allf=t+u"
        head = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source,
                "-t", f"{self.seconds:g}", "-pix_fmt", "yuv420p"]
        if self.codec == "h264":
            # A camera's stream: High profile, no B-frames, one slice per picture, a fixed GOP.
            codec = ["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-bf", "0", "-g", str(gop),
                     "-keyint_min", str(gop), "-sc_threshold", "0", "-x264-params", "repeat-headers=1"]
        else:
            codec = ["-c:v", "libx265", "-preset", "superfast", "-x265-params",
                     f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:repeat-headers=1:log-level=error"]
        return [*head, *codec, *rate, "-f", "h264" if self.codec == "h264" else "hevc"]

    def make(self, settings: Settings) -> Path:
        argv = [*self.ffmpeg_args(), str(self.path)]
        settings.record([*argv[:-1], f"benchmarks/work/{self.path.name}"])
        if not self.path.exists():
            WORK.mkdir(parents=True, exist_ok=True)
            settings.log(f"encoding {self.path.name}")
            partial = self.path.with_suffix(".part" + self.path.suffix)
            subprocess.run([*argv[:-1], str(partial)], check=True)
            partial.rename(self.path)
        return self.path

    def describe(self) -> str:
        codec = "H.264" if self.codec == "h264" else "H.265"
        return f"{codec} {self.width}x{self.height} {self.fps} fps, {self.kbps / 1000:g} Mbit/s, {self.gop_s:g} s GOP"


def camera_clip(settings: Settings, codec: str = "h264", gop_s: float = 2.0) -> Clip:
    """The standard input: 1080p30, 4 Mbit/s H.264 (3 Mbit/s H.265), 2 s GOP; tiny in quick mode."""
    if settings.quick:
        return Clip(codec, 320, 180, 30, min(gop_s, 1.0), 4, 300)
    seconds = max(20.0, 2 * gop_s)
    return Clip(codec, 1920, 1080, 30, gop_s, seconds, 4000 if codec == "h264" else 3000)


# -- processes ------------------------------------------------------------------------------------------


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


class Agent:
    """The real agent, ``python -m edgeagent run -c FILE``, with a token file and an HTTP port of its own."""

    def __init__(
        self,
        settings: Settings,
        cameras: dict[str, str],
        snapshot_interval_s: float = 2.0,
        mqtt_port: int | None = None,
        max_viewers: int = 64,
        module: str = "edgeagent",
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.cameras = cameras
        self.snapshot_interval_s = snapshot_interval_s
        self.mqtt_port = mqtt_port
        self.max_viewers = max_viewers
        self.module = module
        self.extra_args = extra_args or []
        self.env = env or {}
        self.workdir = Path(tempfile.mkdtemp(prefix="edgeagent-bench-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[str] | None = None
        self.started_at = 0.0

    def config(self) -> dict[str, Any]:
        token = self.workdir / "token"
        token.write_text(TOKEN + "\n")
        token.chmod(0o600)
        config: dict[str, Any] = {
            "agent": {"id": "bench", "state_dir": str(self.workdir / "state"), "health_interval_s": 10},
            "http": {"listen": f"127.0.0.1:{self.port}", "token_file": str(token)},
            "webrtc": {
                "host_addresses": ["127.0.0.1"],
                "max_viewers_per_camera": self.max_viewers,
                "max_viewers_total": self.max_viewers,
            },
            "cameras": {
                name: {"url": url, "snapshot": {"interval_s": self.snapshot_interval_s, "width": 640}}
                for name, url in self.cameras.items()
            },
        }
        if self.mqtt_port:
            config["mqtt"] = {"host": "127.0.0.1", "port": self.mqtt_port}
        return config

    def start(self, wait_online: bool = True) -> Agent:
        path = self.workdir / "agent.yaml"
        path.write_text(json.dumps(self.config(), indent=1))  # JSON is YAML
        argv = [sys.executable, "-m", self.module, "run", "-c", str(path), *self.extra_args]
        self.settings.record([*argv[:-1 - len(self.extra_args)], "AGENT.yaml", *self.extra_args])
        log = open(self.workdir / "agent.log", "w")  # noqa: SIM115 - lives as long as the agent
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env={**python_env(), **self.env}, stdout=log, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )
        if wait_online:
            self.wait_online()
        return self

    def get(self, path: str, timeout_s: float = 5.0) -> Any:
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read()
        return json.loads(body) if path == "/cameras" else body.decode()

    def online(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = (self.workdir / "agent.log").read_text()[-2000:]
            raise RuntimeError(f"the agent exited with {self.process.returncode}:\n{log}")
        try:
            document = self.get("/cameras")
        except (OSError, urllib.error.URLError, ValueError):
            return False
        return all(camera["status"] == "online" for camera in document["cameras"])

    def wait_online(self, timeout_s: float = 60.0) -> float:
        wait_until(self.online, timeout_s, f"the agent with its {len(self.cameras)} camera(s) online", 0.2)
        return time.monotonic() - self.started_at

    @property
    def ps(self) -> psutil.Process:
        assert self.process is not None
        return psutil.Process(self.process.pid)

    def stop(self) -> None:
        stop_process(self.process, 8.0)
        self.process = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Agent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


FIX_ENV = {"BENCH_NO_READ_TIMEOUT": "1"}  # the proposed ingest change, see benchmarks.probed_agent
# every proposed change at once, without the latency probes
PROPOSED_ENV = {**FIX_ENV, "BENCH_FRESH_SNAPSHOT_DECODER": "1", "BENCH_LATENCY_PROBE": "0"}


class ProbedAgent(Agent):
    """The agent run under ``benchmarks.probed_agent``: latency probes, an optional decode load."""

    def __init__(self, settings: Settings, cameras: dict[str, str], env: dict[str, str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(settings, cameras, module="benchmarks.probed_agent", **kwargs)
        self.out = self.workdir / "probe.json"
        self.env = {"BENCH_PROBE_OUT": str(self.out), **(env or {})}
        self._seq = 0

    def mark(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGUSR1)

    def read(self) -> dict[str, Any]:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGUSR2)
        self._seq += 1

        def written() -> dict[str, Any] | None:
            try:
                document = json.loads(self.out.read_text())
            except (OSError, ValueError):
                return None
            return document if document["seq"] >= self._seq else None

        return wait_until(written, 10, "the probe's figures", 0.02)


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0–100) by linear interpolation, or None for no values."""
    if not values:
        return None
    items = sorted(values)
    position = (len(items) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(items) - 1)
    return items[low] + (items[high] - items[low]) * (position - low)


@contextlib.contextmanager
def popen(settings: Settings, argv: list[str], **kwargs: Any) -> Iterator[subprocess.Popen[Any]]:
    settings.record(argv)
    kwargs.setdefault("start_new_session", True)
    process = subprocess.Popen(argv, **kwargs)
    try:
        yield process
    finally:
        stop_process(process)


# -- the machine ----------------------------------------------------------------------------------------


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


# -- WebRTC: light clients and the stock-aiortc reference ----------------------------------------------------


class Viewers:
    """The light client process (``benchmarks.webrtc_client``), driven one command at a time."""

    def __init__(self, settings: Settings, whep: str, token: str | None = TOKEN) -> None:
        argv = [sys.executable, "-m", "benchmarks.webrtc_client", "--whep", whep]
        if token:
            argv += ["--token", token]
        settings.record([*argv[:4], "URL/whep/CAMERA", *(["--token", "TOKEN"] if token else [])])
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=python_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            start_new_session=True,
        )
        self._expect("READY")

    def _expect(self, word: str) -> Any:
        assert self.process.stdout is not None
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"the WebRTC client exited (code {self.process.poll()}) before {word}")
            head, _, rest = line.strip().partition(" ")
            if head == "ERROR":
                raise RuntimeError(f"WebRTC client: {rest}")
            if head == word:
                return json.loads(rest) if rest else None

    def command(self, line: str, word: str) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return self._expect(word)

    def join(self, count: int = 1) -> dict[str, Any]:
        return self.command(f"JOIN {count}", "JOINED")

    def leave(self, count: int = 1) -> None:
        self.command(f"LEAVE {count}", "LEFT")

    def mark(self) -> None:
        self.command("MARK", "MARKED")

    def stats(self) -> dict[str, Any]:
        return self.command("STATS", "STATS")

    @property
    def ps(self) -> psutil.Process:
        return psutil.Process(self.process.pid)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.process.stdin is not None
            self.process.stdin.write("QUIT\n")
            self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            stop_process(self.process)

    def __enter__(self) -> Viewers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StockServer:
    """Stock aiortc (``MediaPlayer(decode=False)`` + ``MediaRelay``) in a process of its own."""

    def __init__(self, settings: Settings, url: str) -> None:
        self.settings = settings
        self.rtsp = url
        self.process: subprocess.Popen[str] | None = None
        self.whep = ""

    def __enter__(self) -> StockServer:
        argv = [sys.executable, "-m", "benchmarks.stock_server", "--url", self.rtsp]
        self.settings.record([*argv[:-1], "rtsp://..."])
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("READY "):
            stop_process(self.process)
            raise RuntimeError(f"stock aiortc server did not start (said {line!r})")
        self.whep = line.split()[1]
        return self

    @property
    def ps(self) -> psutil.Process:
        assert self.process is not None
        return psutil.Process(self.process.pid)

    def __exit__(self, *exc: object) -> None:
        stop_process(self.process)
