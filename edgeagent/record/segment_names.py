"""Where a segment's file lives, and its wall-clock start read back from the name: shared by the recorder
(which names files), repair and the commands run on the box (which must not import PyAV)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

_STAMP = "%Y%m%dT%H%M%S.%fZ"


def segment_path(root: Path, camera: str, start: datetime) -> Path:
    """``<root>/<camera>/<date>/<camera>-<start>.mp4``."""
    return root / camera / start.strftime("%Y-%m-%d") / f"{camera}-{start.strftime(_STAMP)}.mp4"


def start_from_name(path: Path) -> datetime | None:
    try:
        return datetime.strptime(path.stem.rpartition("-")[2], _STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None
