"""A directory's entries made durable: after a file is created or renamed, its name survives a power cut
only once the directory itself is synced (fsync on the file covers its contents, not its name)."""

from __future__ import annotations

import os
from pathlib import Path


def sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
