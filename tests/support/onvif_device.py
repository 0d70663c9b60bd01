"""IPyCam (the independent ONVIF device, PyPI ``ipycam``) in a network namespace of its own, with our
GStreamer RTSP simulator beside it as the camera's stream: one device at one address, as on a road.

The agent and the tests stay in this namespace and reach the device over the veth pair; the device's
multicast Hello and probe answers never get further than that link.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.camera import Camera
from tests.support.net import wait_for_port
from tests.support.netns import Netns

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "tests" / "support" / "ipycam_device.py"
ONVIF_PORT = 8080
RTSP_PORT = 8554
USER = "operator"
PASSWORD = "onvif-test-secret"


class NamespacedCamera(Camera):
    """The RTSP simulator, run inside ``netns``."""

    def __init__(self, netns: Netns, **kwargs: object) -> None:
        super().__init__(host=netns.device_address, port=RTSP_PORT, **kwargs)  # type: ignore[arg-type]
        self.netns = netns

    def command(self) -> list[str]:
        return self.netns.command(super().command())


class IpyCamDevice:
    def __init__(self, workdir: Path, width: int = 320, height: int = 180, fps: int = 25) -> None:
        self.workdir = workdir
        self.netns = Netns()
        self.width, self.height, self.fps = width, height, fps
        self.rtsp: NamespacedCamera | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return self.netns.device_address

    @property
    def onvif_address(self) -> str:
        return f"{self.address}:{ONVIF_PORT}"

    @property
    def device_url(self) -> str:
        return f"http://{self.onvif_address}/onvif/device_service"

    @property
    def stream_url(self) -> str:
        return f"rtsp://{self.address}:{RTSP_PORT}/stream1"

    @property
    def stream_url_with_user(self) -> str:
        """The stream as a camera entry names it without ONVIF (its password goes in ``password``)."""
        return f"rtsp://{USER}@{self.address}:{RTSP_PORT}/stream1"

    def start(self) -> IpyCamDevice:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.netns.make()
        try:
            # The stream asks for the device's account, as a real camera's does. Without authentication the
            # simulator answered the agent's unauthenticated check (camera/challenge.py) with its SDP: its
            # shared pipeline was made for that check and torn down as FFmpeg's DESCRIBE came in, answered
            # with 503 (in about half the starts here; under load every retry can lose the same way).
            self.rtsp = NamespacedCamera(
                self.netns, width=self.width, height=self.height, fps=self.fps, user=USER, password=PASSWORD,
                log_path=self.workdir / "rtsp.log",
            )  # fmt: skip
            self.rtsp.start()
            self._start_device()
        except BaseException:
            self.close()
            raise
        return self

    def _start_device(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)  # IPyCam keeps ptz_presets.json in its cwd
        argv = [sys.executable, str(RUNNER), "--address", self.address, "--port", str(ONVIF_PORT),
                "--rtsp-port", str(RTSP_PORT), "--user", USER, "--width", str(self.width),
                "--height", str(self.height), "--fps", str(self.fps)]  # fmt: skip
        env = dict(os.environ, IPYCAM_PASSWORD=PASSWORD)
        log = open(self.workdir / "ipycam.log", "ab")  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                self.netns.command(argv), stdout=subprocess.PIPE, stderr=log, cwd=self.workdir, env=env,
                start_new_session=True,
            )  # fmt: skip
        finally:
            log.close()
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            if not selector.select(30) or not self.proc.stdout.readline().startswith(b"READY"):
                raise RuntimeError(f"IPyCam did not start: {(self.workdir / 'ipycam.log').read_text()[-2000:]}")
        wait_for_port(self.address, ONVIF_PORT, timeout=10)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.rtsp is not None:
            self.rtsp.close()
        self.netns.close()


def wait_until(check, timeout: float, what: str, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll ``check()`` until it returns something true; its value, or TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout} s")
        time.sleep(interval)


def agent_http(agent: Any, method: str, path: str, body: object = None, operator: str | None = None
          ) -> tuple[int, str]:  # fmt: skip
    """(status, body) of one request to the agent as an operator (``X-Operator``), bearer token included."""
    headers = {"Authorization": f"Bearer {agent.token}"}
    if operator:
        headers["X-Operator"] = operator
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(agent.http_url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
