"""Where the benchmarks live and what a run is told: paths, the run's settings, the commands it ran."""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
WORK = BENCH / "work"  # clips and scratch files; git-ignored
SIMULATOR = ROOT / "edgeagent" / "simulator" / "rtsp_camera.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, which has PyGObject for the GStreamer simulator
TOKEN = "benchmark-token-0123456789abcdef"


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
