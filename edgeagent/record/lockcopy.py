"""A copy of the locks beside the index, so that a lost database never frees locked evidence for deletion."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

LOCK_COLUMNS = "id, camera, start_us, end_us, reason, created_us"
_FIELDS = tuple(name.strip() for name in LOCK_COLUMNS.split(","))


def write_copy(path: Path, rows: list[tuple[Any, ...]]) -> None:
    temporary = path.with_suffix(".tmp")
    try:
        with open(temporary, "w") as file:
            json.dump([dict(zip(_FIELDS, row, strict=True)) for row in rows], file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError:
        pass  # a full disk: the database still holds the locks, the next change writes the copy


def read_copy(path: Path) -> list[tuple[Any, ...]]:
    try:
        entries = json.loads(path.read_text())
        return [tuple(entry[name] for name in _FIELDS) for entry in entries]
    except (OSError, ValueError, KeyError, TypeError):
        return []
