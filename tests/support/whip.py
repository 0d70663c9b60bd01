"""meetecho's simple-whip-server (from Debian's package, see scripts/setup-whip-server.sh) in front of Janus.

It runs in Janus's network namespace, talks to Janus over Janus's WebSocket API on the namespace's
loopback, and serves WHIP on the namespace's addresses only. Endpoints are made with its own
(non-standard) ``POST /whip/create``; publishing is plain WHIP.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

from tests.support.janus import WS_PORT, Janus
from tests.support.net import wait_for_port

ROOT = Path(__file__).resolve().parents[2]
SERVER_DIR = ROOT / ".cache" / "simple-whip-server"
PORT = 7080


def available() -> bool:
    return (SERVER_DIR / ".installed").exists()


class WhipServer:
    def __init__(self, janus: Janus, workdir: Path) -> None:
        self.janus = janus
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://{self.janus.netns.uplink.ns_ip}:{PORT}/whip"

    def endpoint(self, endpoint_id: str) -> str:
        return f"{self.base}/endpoint/{endpoint_id}"

    def start(self) -> WhipServer:
        secret = f"apiSecret: {json.dumps(self.janus.api_secret)}," if self.janus.api_secret else ""
        src = self.workdir / "src"
        shutil.copytree(SERVER_DIR / "src", src, dirs_exist_ok=True, ignore=shutil.ignore_patterns("config.js"))
        (src / "config.js").write_text(
            f"""module.exports = {{
  janus: {{ address: 'ws://127.0.0.1:{WS_PORT}', {secret} }},
  port: {PORT}, rest: '/whip', allowTrickle: true, strictETags: false, iceServers: []
}};
"""
        )
        log = open(self.workdir / "whip-server.log", "wb")  # noqa: SIM115 - kept by the process
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.janus.netns.name, "node", "src/server.js"],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={"PATH": "/usr/bin:/bin", "DEBUG": "whip:*,-whip:debug", "NODE_PATH": str(SERVER_DIR / "node_modules")},
        )
        log.close()
        alive = lambda: self.proc is not None and self.proc.poll() is None  # noqa: E731
        wait_for_port(self.janus.netns.uplink.ns_ip, PORT, timeout=20, alive=alive)
        return self

    def create_endpoint(self, endpoint_id: str, room: int, token: str) -> None:
        body = json.dumps({"id": endpoint_id, "room": room, "token": token, "label": endpoint_id}).encode()
        request = urllib.request.Request(
            f"{self.base}/create", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200, response.status

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def log_text(self) -> str:
        path = self.workdir / "whip-server.log"
        return path.read_text(errors="replace") if path.exists() else ""
