"""The RTSP camera simulator itself, read with PyAV the way the agent reads a camera."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.error
import pytest

from tests.support import SIMULATOR, Camera, free_port

pytestmark = pytest.mark.skipif(
    not os.path.exists("/usr/bin/python3") or shutil.which("gst-launch-1.0") is None,
    reason="GStreamer and Debian's python3-gi are needed (scripts/setup.sh installs them)",
)

OPTIONS = {"rtsp_transport": "tcp", "timeout": "3000000"}


def open_rtsp(url: str, timeout_s: float = 5.0) -> av.container.InputContainer:
    return av.open(url, options=OPTIONS, timeout=(timeout_s, timeout_s))


@dataclass
class Reading:
    codec: str = ""
    profile: str | None = None
    time_base: Fraction | None = None
    open_s: float = 0.0
    packets: int = 0
    keyframe_packets: list[int] = field(default_factory=list)  # packet indexes
    pts: list[int] = field(default_factory=list)  # packet pts in arrival (decode) order, None dropped
    sizes: set[tuple[int, int]] = field(default_factory=set)
    frames: int = 0
    first_packet_t: float = 0.0
    last_packet_t: float = 0.0

    @property
    def span_s(self) -> float:
        """Stream time covered by the packets read."""
        assert self.time_base is not None
        return float((max(self.pts) - min(self.pts)) * self.time_base)


def read(url: str, *, frames: int | None = None, stream_s: float | None = None, max_s: float = 20) -> Reading:
    """Read until ``frames`` frames were decoded or the packets cover ``stream_s`` seconds of stream time."""
    r = Reading()
    t0 = time.monotonic()
    with open_rtsp(url) as c:
        r.open_s = time.monotonic() - t0
        s = c.streams.video[0]
        r.codec = s.codec_context.name
        r.profile = s.codec_context.profile
        r.time_base = s.time_base
        for p in c.demux(s):
            now = time.monotonic()
            if r.packets == 0:
                r.first_packet_t = now
            r.last_packet_t = now
            if p.is_keyframe:
                r.keyframe_packets.append(r.packets)
            r.packets += 1
            if p.pts is not None:
                r.pts.append(p.pts)
            for f in p.decode():
                r.frames += 1
                r.sizes.add((f.width, f.height))
            if frames is not None and r.frames >= frames:
                break
            if stream_s is not None and len(r.pts) > 1 and r.span_s >= stream_s:
                break
            if now - t0 > max_s:
                raise TimeoutError(f"read {r.frames} frames in {max_s} s")
    return r


def test_h264_decodes_at_requested_size_and_gop(camera_factory) -> None:
    cam = camera_factory(codec="h264", width=320, height=240, fps=20, gop_s=0.5)
    assert cam.ready_line == f"READY {cam.url}"
    r = read(cam.url, frames=45)
    assert r.codec == "h264"
    assert r.profile == "Constrained Baseline"
    assert r.sizes == {(320, 240)}
    assert r.frames >= 45
    # key-int-max = fps * gop_s = 10: a keyframe every 10 frames
    gaps = {b - a for a, b in zip(r.keyframe_packets, r.keyframe_packets[1:], strict=False)}
    assert gaps == {10}, r.keyframe_packets


def test_h265_decodes_at_requested_size(camera_factory) -> None:
    cam = camera_factory(codec="h265", width=352, height=288)
    r = read(cam.url, frames=30)
    assert r.codec == "hevc"
    assert r.profile == "Main"
    assert r.sizes == {(352, 288)}


def test_digest_auth_rejects_wrong_password_and_accepts_the_right_one(camera_factory) -> None:
    cam = camera_factory(user="viewer", password="s3cret-pw", width=320, height=180)
    with pytest.raises(av.error.HTTPUnauthorizedError):
        open_rtsp(f"rtsp://viewer:wrong@127.0.0.1:{cam.port}{cam.path}")
    with pytest.raises(av.error.HTTPUnauthorizedError):
        open_rtsp(cam.url)  # no credentials at all
    with pytest.raises(av.error.HTTPNotFoundError):
        open_rtsp(f"rtsp://viewer:s3cret-pw@127.0.0.1:{cam.port}/other")
    r = read(cam.url_with_credentials, frames=10)
    assert r.sizes == {(320, 180)}
    assert cam.url_with_user == f"rtsp://viewer@127.0.0.1:{cam.port}/stream1"


def test_password_file_option(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("from-a-file\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "CAMSIM_PASSWORD"}
    cmd = ["/usr/bin/python3", str(SIMULATOR), "--port", str(port), "--user", "u", "--password-file", str(pw)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().decode().strip() == f"READY rtsp://127.0.0.1:{port}/stream1"
        with pytest.raises(av.error.HTTPUnauthorizedError):
            open_rtsp(f"rtsp://u:nope@127.0.0.1:{port}/stream1")
        assert read(f"rtsp://u:from-a-file@127.0.0.1:{port}/stream1", frames=5).frames >= 5
    finally:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()


def test_user_without_password_is_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CAMSIM_PASSWORD"}
    cmd = ["/usr/bin/python3", str(SIMULATOR), "--port", str(free_port()), "--user", "u"]
    res = subprocess.run(cmd, capture_output=True, env=env, timeout=30)
    assert res.returncode == 2
    assert res.stdout == b""
    assert b"CAMSIM_PASSWORD" in res.stderr


def test_second_client_gets_frames_and_first_is_not_disturbed(camera_factory) -> None:
    cam = camera_factory(width=320, height=240, fps=25, gop_s=1.0)
    first: dict[str, object] = {}
    b_started = threading.Event()

    def client_a() -> None:
        try:
            with open_rtsp(cam.url) as c:
                s = c.streams.video[0]
                pts: list[int] = []
                frames = 0
                deadline = None
                for p in c.demux(s):
                    frames += len(p.decode())
                    if p.pts is not None:
                        pts.append(p.pts)
                    if b_started.is_set() and deadline is None:
                        deadline = time.monotonic() + 2.5
                    if deadline is not None and time.monotonic() > deadline:
                        break
                    if len(pts) > 400:
                        break
                first.update(pts=pts, frames=frames, tb=s.time_base)
        except Exception as e:  # reported by the main thread
            first["error"] = e

    t = threading.Thread(target=client_a)
    t.start()
    try:
        # B joins while A is streaming: same shared pipeline, B starts wherever the encoder is.
        time.sleep(1.5)
        b_started.set()
        r = read(cam.url, frames=25)
        assert r.frames >= 25
        assert r.sizes == {(320, 240)}
    finally:
        b_started.set()
        t.join(20)
    assert "error" not in first, first.get("error")
    pts = first["pts"]
    # A's stream went on without a timestamp jump: a PLAY from B must not seek the shared pipeline.
    assert all(b > a for a, b in zip(pts, pts[1:], strict=False)), "A saw timestamps going back"
    assert first["frames"] >= 50


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """1 s test clips at 25 fps: MP4 H.264 with B-frames, and a raw H.265 elementary stream."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is needed to make the clips")
    d = tmp_path_factory.mktemp("clips")
    src = ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "1", "-pix_fmt", "yuv420p"]
    made = {
        "h264-bframes.mp4": ["-c:v", "libx264", "-g", "12", "-bf", "2"],
        "h265.h265": ["-c:v", "libx265", "-g", "25", "-x265-params", "log-level=error:bframes=0"],
    }
    for name, codec in made.items():
        subprocess.run(["ffmpeg", "-v", "error", "-y", *src, *codec, str(d / name)], check=True, timeout=60)
    return {name: d / name for name in made}


@pytest.mark.parametrize(("clip", "codec"), [("h264-bframes.mp4", "h264"), ("h265.h265", "hevc")])
def test_file_mode_loops_in_real_time(camera_factory, clips, clip: str, codec: str) -> None:
    cam = camera_factory(file=clips[clip])
    r = read(cam.url, stream_s=2.6)
    assert r.codec == codec
    assert r.sizes == {(320, 240)}
    # The clip has 25 frames (1 s): reading 2.6 s of stream means it looped at least twice, and every
    # frame decoded (at most the one before the first keyframe is lost).
    assert r.frames >= 64, r.frames
    assert r.frames >= r.packets - 2
    assert len(r.keyframe_packets) >= 3
    # Timestamps keep increasing across loops (decode order, so compare with the running maximum of
    # earlier ones minus a B-frame reordering allowance).
    tb = r.time_base
    assert tb is not None
    allowance = int(0.2 / tb)
    running = r.pts[0]
    for p in r.pts[1:]:
        assert p > running - allowance, "timestamps jumped back at a loop"
        running = max(running, p)
    # Paced in real time: FFmpeg's probe buffers about 1 s at open, the rest arrives at 25 fps.
    wall = r.last_packet_t - r.first_packet_t
    assert r.span_s - 1.6 <= wall <= r.span_s + 2.0, (wall, r.span_s)


def test_restart_on_same_port_and_clean_exit(camera_factory) -> None:
    cam = camera_factory(width=320, height=180)
    port = cam.port
    assert read(cam.url, frames=5).frames >= 5
    t0 = time.monotonic()
    assert cam.stop() == 0  # SIGTERM: clean exit
    assert time.monotonic() - t0 < 5
    with pytest.raises(ConnectionRefusedError):
        open_rtsp(cam.url)
    cam.start()
    assert cam.port == port and cam.starts == 2
    assert read(cam.url, frames=5).frames >= 5


def test_frozen_camera_times_out_and_thaws(camera_factory) -> None:
    cam = camera_factory(width=320, height=180)
    cam.freeze()
    t0 = time.monotonic()
    with pytest.raises(av.error.FFmpegError):
        av.open(cam.url, options={"rtsp_transport": "tcp", "timeout": "1000000"}, timeout=(1.5, 1.5))
    assert time.monotonic() - t0 < 10
    cam.thaw()
    assert read(cam.url, frames=5).frames >= 5


def test_port_in_use_fails_before_ready(camera_factory) -> None:
    cam = camera_factory(width=320, height=180)
    with pytest.raises(RuntimeError, match="exited with 2 before READY"):
        camera_factory(port=cam.port)


def test_sigint_exits_cleanly(camera_factory) -> None:
    cam: Camera = camera_factory(width=160, height=120)
    assert cam.proc is not None
    os.kill(cam.proc.pid, signal.SIGINT)
    assert cam.proc.wait(10) == 0
