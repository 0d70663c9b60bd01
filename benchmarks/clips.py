"""The pre-encoded clips the benchmarks make for themselves with ffmpeg, and the standard camera input."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from benchmarks.settings import WORK, Settings


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
