"""The simulator's one diagnostics line format, on stderr (shared by rtsp_camera.py and its siblings)."""

from __future__ import annotations

import os
import sys


def log(msg: str) -> None:
    print(f"camsim[{os.getpid()}]: {msg}", file=sys.stderr, flush=True)
