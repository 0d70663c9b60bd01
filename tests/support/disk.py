"""A small tmpfs of its own for a test: a flash card that fills in seconds."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def tmpfs(mount_point: Path, size: str) -> Iterator[Path]:
    """``mount_point`` (made here) with a tmpfs of ``size`` (``mount`` syntax: 256k, 20m) mounted, 0700."""
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
