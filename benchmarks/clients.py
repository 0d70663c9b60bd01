"""WebRTC: the light client process (``benchmarks.webrtc_client``) and the stock-aiortc reference server."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from typing import Any

import psutil

from benchmarks.processes import python_env, stop_process
from benchmarks.settings import ROOT, TOKEN, Settings


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
