"""The RTSP camera simulator as a subprocess that tests can start, stop, kill, freeze and thaw, and whose
picture can be given a fault (``scene="road"``)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.support.net import free_port
from tests.support.process import ManagedProcess

ROOT = Path(__file__).resolve().parents[2]
SIMULATOR = ROOT / "edgeagent" / "simulator" / "rtsp_camera.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, which has gi (the venv does not)


class Camera:
    """One simulated camera (one RTSP path) on a fixed port, so that it can be restarted "in place".

    ``url`` has no credentials; ``url_with_user`` carries the user name only (the form the agent's config
    uses, with the password in a file); ``url_with_credentials`` carries both (for direct PyAV reads).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        path: str = "/stream1",
        codec: str = "h264",
        width: int = 640,
        height: int = 360,
        fps: int = 25,
        gop_s: float = 1.0,
        bitrate_kbps: int | None = None,
        preset: str | None = None,
        pattern: str = "smpte",
        scene: str = "pattern",
        user: str | None = None,
        password: str | None = None,
        file: str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
        ready_timeout: float = 20.0,
    ) -> None:
        if user and not password:
            raise ValueError("a camera with a user needs a password")
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.path = path if path.startswith("/") else "/" + path
        self.codec = codec
        self.width, self.height, self.fps, self.gop_s = width, height, fps, gop_s
        self.bitrate_kbps = bitrate_kbps
        self.preset = preset
        self.pattern = pattern
        self.scene = scene
        self.fault: str | None = None
        self.user, self.password = user, password
        self.file = Path(file) if file is not None else None
        self.log_path = Path(log_path) if log_path is not None else None
        self.ready_timeout = ready_timeout
        self.tls = (Path(tls_cert), Path(tls_key)) if tls_cert and tls_key else None  # serve rtsps://
        self.scheme = "rtsps" if self.tls else "rtsp"
        self.process = ManagedProcess([], name="camera simulator", pump="stdout")
        self.frozen = False
        self.ready_line = ""
        self.ready_after_s: float | None = None  # how long the last start() waited for READY
        self.starts = 0

    # ------------------------------------------------------------------ addresses
    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.path}"

    @property
    def url_with_user(self) -> str:
        if not self.user:
            return self.url
        return f"{self.scheme}://{self.user}@{self.host}:{self.port}{self.path}"

    @property
    def url_with_credentials(self) -> str:
        if not self.user:
            return self.url
        return f"{self.scheme}://{self.user}:{self.password}@{self.host}:{self.port}{self.path}"

    # ------------------------------------------------------------------ process control
    def command(self) -> list[str]:
        cmd = [
            SYSTEM_PYTHON,
            str(SIMULATOR),
            "--host", self.host,
            "--port", str(self.port),
            "--path", self.path,
            "--codec", self.codec,
            "--width", str(self.width),
            "--height", str(self.height),
            "--fps", str(self.fps),
            "--gop-s", str(self.gop_s),
            "--pattern", self.pattern,
            "--scene", self.scene,
        ]  # fmt: skip
        if self.bitrate_kbps:
            cmd += ["--bitrate-kbps", str(self.bitrate_kbps)]
        if self.preset:
            cmd += ["--preset", self.preset]
        if self.user:
            cmd += ["--user", self.user]
        if self.file is not None:
            cmd += ["--file", str(self.file)]
        if self.tls is not None:
            cmd += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        return cmd

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.process.proc

    @property
    def running(self) -> bool:
        return self.process.running

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def start(self) -> Camera:
        """Start (or restart, on the same port) and return once the simulator printed READY."""
        if self.running:
            raise RuntimeError(f"camera on port {self.port} is already running")
        env = dict(os.environ)
        env.pop("CAMSIM_PASSWORD", None)
        if self.password:
            env["CAMSIM_PASSWORD"] = self.password
        self.process.argv = self.command()
        self.process.side_log = self.log_path  # the simulator's stderr; stdout is READY (and answers)
        self.process.commands = self.scene == "road"
        t0 = time.monotonic()
        mark = self.process.mark()
        self.process.start(env)
        self.frozen = False
        self.fault = None
        self.starts += 1
        try:
            self.ready_line = self._await_ready(mark, t0 + self.ready_timeout)
        except BaseException:
            self.kill()
            raise
        self.ready_after_s = time.monotonic() - t0
        return self

    def _await_ready(self, mark: int, deadline: float) -> str:
        line = self._next_line(mark, deadline, "READY")
        if not line.startswith(f"READY {self.scheme}://"):
            raise RuntimeError(f"unexpected first line from the simulator: {line!r}{self._log_tail()}")
        return line

    def _next_line(self, after: int, deadline: float, waiting_for: str) -> str:
        """The simulator's next line on stdout from position ``after`` (it prints READY, then one line per
        command it obeyed)."""
        try:
            line = self.process.wait_line(lambda _: True, max(0.0, deadline - time.monotonic()), after)
        except TimeoutError:
            raise TimeoutError(f"simulator: no {waiting_for} in time{self._log_tail()}") from None
        except RuntimeError:
            raise RuntimeError(
                f"simulator exited with {self.process.returncode} before {waiting_for}{self._log_tail()}"
            ) from None
        return line.rstrip("\n")

    def set_fault(self, fault: str | None, timeout: float = 5.0) -> None:
        """Give the picture a fault: ``frozen`` (a hung sensor behind a ticking clock overlay), ``black``,
        ``blur``, ``shift`` (the view turned), or None for the normal picture. Returns once the simulator
        applied it (the next encoded frame shows it). Needs ``scene="road"``."""
        if self.scene != "road":
            raise RuntimeError("picture faults need Camera(scene='road')")
        if not self.running:
            raise RuntimeError("the camera is not running")
        name = fault or "none"
        mark = self.process.mark()
        self.process.send_line(f"fault {name}")
        answer = self._next_line(mark, time.monotonic() + timeout, f"answer to fault {name}")
        if answer != f"FAULT {name}":
            raise RuntimeError(f"simulator refused fault {name}: {answer!r}")
        self.fault = fault

    def _log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n--- simulator log ---\n" + self.log_path.read_text(errors="replace")[-3000:]

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait (the simulator exits 0); SIGKILL if it does not exit in ``timeout``."""
        if self.proc is None:
            return None
        if self.frozen:
            self.thaw()
        return self.process.stop(timeout)

    def kill(self) -> int | None:
        """SIGKILL (a crash or power loss): clients see the TCP connection reset."""
        rc = self.process.kill()
        self.frozen = False
        return rc

    def freeze(self) -> None:
        """SIGSTOP: a hung camera, sockets still open, no data and no answers."""
        self.process.signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        self.process.signal(signal.SIGCONT)
        self.frozen = False

    def close(self) -> None:
        """Teardown: thaw, then kill. Safe to call more than once."""
        if self.running:
            self.thaw()
            self.kill()
        self.process.close()

    def log_text(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def __repr__(self) -> str:
        state = "frozen" if self.frozen else ("running" if self.running else "stopped")
        return f"<Camera {self.url} {self.codec} {self.width}x{self.height}@{self.fps} {state}>"
