"""The RTSP camera simulator as a subprocess that tests can start, stop, kill, freeze and thaw, and whose
picture can be given a fault (``scene="road"``)."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from pathlib import Path

from tests.support.net import free_port

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
        self.proc: subprocess.Popen[bytes] | None = None
        self.frozen = False
        self.ready_line = ""
        self.ready_after_s: float | None = None  # how long the last start() waited for READY
        self.starts = 0

    # ------------------------------------------------------------------ addresses
    @property
    def url(self) -> str:
        return f"rtsp://{self.host}:{self.port}{self.path}"

    @property
    def url_with_user(self) -> str:
        if not self.user:
            return self.url
        return f"rtsp://{self.user}@{self.host}:{self.port}{self.path}"

    @property
    def url_with_credentials(self) -> str:
        if not self.user:
            return self.url
        return f"rtsp://{self.user}:{self.password}@{self.host}:{self.port}{self.path}"

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
        return cmd

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> Camera:
        """Start (or restart, on the same port) and return once the simulator printed READY."""
        if self.running:
            raise RuntimeError(f"camera on port {self.port} is already running")
        env = dict(os.environ)
        env.pop("CAMSIM_PASSWORD", None)
        if self.password:
            env["CAMSIM_PASSWORD"] = self.password
        stderr = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.PIPE if self.scene == "road" else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                start_new_session=True,  # a Ctrl+C in the terminal reaches pytest only
            )
        finally:
            if stderr is not subprocess.DEVNULL:
                stderr.close()
        self.frozen = False
        self.fault = None
        self.starts += 1
        try:
            self.ready_line = self._await_ready(t0 + self.ready_timeout)
        except BaseException:
            self.kill()
            raise
        self.ready_after_s = time.monotonic() - t0
        return self

    def _await_ready(self, deadline: float) -> str:
        line = self._read_line(deadline, "READY")
        if not line.startswith("READY rtsp://"):
            raise RuntimeError(f"unexpected first line from the simulator: {line!r}{self._log_tail()}")
        return line

    def _read_line(self, deadline: float, waiting_for: str) -> str:
        """One line of the simulator's stdout (it prints READY, then one line per command it obeyed)."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while not buf.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"simulator: no {waiting_for} in time{self._log_tail()}")
                if not sel.select(remaining):
                    continue
                chunk = os.read(fd, 1)  # byte by byte: never read past the line into the next answer
                if not chunk:
                    self.proc.wait(5)
                    raise RuntimeError(
                        f"simulator exited with {self.proc.returncode} before {waiting_for}{self._log_tail()}"
                    )
                buf += chunk
        return buf[:-1].decode()

    def set_fault(self, fault: str | None, timeout: float = 5.0) -> None:
        """Give the picture a fault: ``frozen`` (a hung sensor behind a ticking clock overlay), ``black``,
        ``blur``, ``shift`` (the view turned), or None for the normal picture. Returns once the simulator
        applied it (the next encoded frame shows it). Needs ``scene="road"``."""
        if self.scene != "road":
            raise RuntimeError("picture faults need Camera(scene='road')")
        if not self.running or self.proc is None or self.proc.stdin is None:
            raise RuntimeError("the camera is not running")
        name = fault or "none"
        self.proc.stdin.write(f"fault {name}\n".encode())
        self.proc.stdin.flush()
        answer = self._read_line(time.monotonic() + timeout, f"answer to fault {name}")
        if answer != f"FAULT {name}":
            raise RuntimeError(f"simulator refused fault {name}: {answer!r}")
        self.fault = fault

    def _log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n--- simulator log ---\n" + self.log_path.read_text(errors="replace")[-3000:]

    def _signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait (the simulator exits 0); SIGKILL if it does not exit in ``timeout``."""
        if self.proc is None:
            return None
        if self.frozen:
            self.thaw()
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        return self._reap()

    def kill(self) -> int | None:
        """SIGKILL (a crash or power loss): clients see the TCP connection reset."""
        if self.proc is None:
            return None
        self._signal(signal.SIGKILL)
        self.proc.wait(10)
        self.frozen = False
        return self._reap()

    def _reap(self) -> int | None:
        assert self.proc is not None
        rc = self.proc.returncode
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        return rc

    def freeze(self) -> None:
        """SIGSTOP: a hung camera, sockets still open, no data and no answers."""
        self._signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)
        self.frozen = False

    def close(self) -> None:
        """Teardown: thaw, then kill. Safe to call more than once."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.thaw()
            self.kill()
        else:
            self._reap()

    def log_text(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def __repr__(self) -> str:
        state = "frozen" if self.frozen else ("running" if self.running else "stopped")
        return f"<Camera {self.url} {self.codec} {self.width}x{self.height}@{self.fps} {state}>"
