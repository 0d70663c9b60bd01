"""(12) CPU of the agent's TLS relay for an rtsps:// camera (camera/tls_relay.py), 1080p30 4 Mbit/s H.264.

The agent's real ingest (CameraSource feeding a CameraHub, in a child process of its own) reads the same
clip from the simulator twice: plain rtsp:// directly, and rtsps:// through the relay (verified against the
camera's certificate). The difference is what the relay costs: TLS decryption plus the bytes' trip through
asyncio. Beside it, the reference: ffmpeg's command line reading the same plain and rtsps:// streams (its own
TLS in C, unverified), whose difference is the cost of TLS alone.

    python -m benchmarks --only tls_relay
"""

from __future__ import annotations

import asyncio
import json
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from benchmarks.clips import camera_clip
from benchmarks.cpu import measure, rss_mb
from benchmarks.figures import fmt, summary
from benchmarks.processes import free_port, popen, python_env
from benchmarks.settings import SIMULATOR, SYSTEM_PYTHON, WORK, Settings

TARGET_RELAY_PERCENT = 5.0  # of one core per camera, on top of the plain ingest


def _certificate(directory: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 (cert.pem, key.pem); it is its own CA for the check."""
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / "cert.pem").exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "3650", "-subj", "/CN=camera",
                        "-addext", "subjectAltName=IP:127.0.0.1"],
                       cwd=directory, check=True, capture_output=True, timeout=60)  # fmt: skip
    return directory / "cert.pem"


def _simulator(settings: Settings, clip: Path, fps: int, cert: Path | None) -> list[str]:
    argv = [SYSTEM_PYTHON, str(SIMULATOR), "--port", str(free_port()), "--fps", str(fps), "--file", str(clip)]
    return argv + (["--tls-cert", str(cert), "--tls-key", str(cert.with_name("key.pem"))] if cert else [])


def _ready_url(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("READY "):
        raise RuntimeError(f"did not start (said {line!r})")
    return line.split()[1]


def _await_line(process: subprocess.Popen[str], wanted: str, timeout_s: float, label: str) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    while select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))[0]:
        line = process.stdout.readline()
        if not line or line.strip() == wanted:
            return
    raise TimeoutError(f"{label}: not {wanted} within {timeout_s:g} s")


def _window(settings: Settings, argv: list[str], label: str, online: str | None) -> dict[str, Any]:
    """CPU of one reader process over the windows; ``online``: the line it prints once it gets frames."""
    with popen(settings, argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=python_env()) as p:
        if online is not None:
            _await_line(p, online, 30.0, label)
        time.sleep(settings.settle_s)
        if p.poll() is not None:
            raise RuntimeError(f"{label} exited with {p.returncode}")
        process = psutil.Process(p.pid)
        cpu = [measure({label: (process, False)}, settings.window_s).percent[label] for _ in range(settings.reps)]
        rss = rss_mb(process)
        carried = None
        if online is not None:
            p.send_signal(signal.SIGTERM)
            out, _ = p.communicate(timeout=10)
            carried = json.loads(out.strip().splitlines()[-1])["mbit_s"]
        settings.log(f"tls_relay {label}: {fmt(summary(cpu))} % of a core")
        return {"label": label, "cpu": summary(cpu), "rss_mb": rss, "mbit_s": carried}


def run(settings: Settings) -> dict[str, Any]:
    clip = camera_clip(settings, "h264")
    cert = _certificate(WORK / "tls-relay")
    path = clip.make(settings)
    child = [sys.executable, "-m", "benchmarks.tls_relay"]
    with popen(settings, _simulator(settings, path, clip.fps, None), stdout=subprocess.PIPE, text=True,
               stderr=subprocess.DEVNULL) as plain_sim, \
            popen(settings, _simulator(settings, path, clip.fps, cert), stdout=subprocess.PIPE, text=True,
                  stderr=subprocess.DEVNULL) as tls_sim:  # fmt: skip
        plain, tls = _ready_url(plain_sim), _ready_url(tls_sim)
        ffmpeg = ["ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i"]
        results = [
            _window(settings, [*child, plain], "agent ingest, rtsp:// direct", "ONLINE"),
            _window(settings, [*child, tls, str(cert)], "agent ingest, rtsps:// via the relay", "ONLINE"),
            _window(settings, [*ffmpeg, plain, "-c", "copy", "-f", "null", "-"], "ffmpeg, rtsp:// direct", None),
            _window(settings, [*ffmpeg, tls, "-c", "copy", "-f", "null", "-"], "ffmpeg, rtsps:// (own TLS)", None),
        ]
    median = [r["cpu"]["median"] or 0.0 for r in results]
    relay_cost, tls_cost = median[1] - median[0], median[3] - median[2]
    return {
        "name": "tls_relay",
        "title": "12. TLS relay for rtsps:// cameras, CPU per camera",
        "target": f"the relay adds ≤ {TARGET_RELAY_PERCENT:g} % of a core per 1080p30 4 Mbit/s camera",
        "met": relay_cost <= TARGET_RELAY_PERCENT,
        "tables": [{
            "columns": ["reader", "CPU % of a core", "RSS MB", "Mbit/s carried"],
            "rows": [[r["label"], fmt(r["cpu"]), fmt(r["rss_mb"]), fmt(r["mbit_s"], 2)] for r in results]
            + [["relay's cost (via relay − direct)", fmt(relay_cost, 2), "", ""],
               ["ffmpeg's TLS cost (rtsps − rtsp)", fmt(tls_cost, 2), "", ""]],
        }],
        "notes": [
            f"Camera: {clip.describe()}, served by the simulator twice (plain, and rtsps:// with a self-signed "
            "certificate for 127.0.0.1 that the agent verifies as its CA file).",
            "The agent's ingest is CameraSource + CameraHub in a process of its own (`python -m "
            "benchmarks.tls_relay URL [CA]`); the relay runs on that process's event loop, as in the agent.",
            f"{settings.reps} windows of {settings.window_s:g} s each, after {settings.settle_s:g} s online; "
            "median (min–max).",
        ],
        "data": {"results": results, "relay_cost_percent": relay_cost, "ffmpeg_tls_cost_percent": tls_cost},
    }


async def _ingest(url: str, ca_file: str | None) -> None:
    """The child: the agent's ingest of one camera until SIGTERM; prints ONLINE, then the rate carried."""
    from edgeagent.camera.hub import CameraHub
    from edgeagent.camera.source import CameraSource, CameraState
    from edgeagent.config import CameraSection

    section = CameraSection(url=url, tls_ca_file=ca_file)  # type: ignore[arg-type]
    source = CameraSource("bench", section, None, CameraHub("bench"))
    stop, online = asyncio.Event(), asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    source.on_state_change(lambda s: online.set() if s.state == CameraState.ONLINE else None)
    source.start()
    await online.wait()
    print("ONLINE", flush=True)
    started, before = time.monotonic(), source.hub.bytes_total
    await stop.wait()
    mbit_s = 8e-6 * (source.hub.bytes_total - before) / (time.monotonic() - started)
    await source.stop()
    print(json.dumps({"mbit_s": mbit_s, "last_error": source.last_error}), flush=True)


if __name__ == "__main__":
    asyncio.run(_ingest(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
