"""The real agent as a process (``python -m edgeagent run``), and the agent under the latency probes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Self

import psutil

from benchmarks.processes import free_port, python_env, stop_process, wait_until
from benchmarks.settings import ROOT, TOKEN, Settings


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

    def start(self, wait_online: bool = True) -> Self:
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

    def __enter__(self) -> Self:
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
