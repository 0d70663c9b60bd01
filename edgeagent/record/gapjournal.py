"""Why recording stopped, kept on the disk beside the segments: what the index would lose with its database.

The segment files give back the recorded time (``repair.reindex``), not why the holes between them are
there (camera offline, agent crashed, disk full...). So every change to the index's gaps is also appended,
as one JSON line, to ``<recording.dir>/gaps.journal`` (an ``edgeagent.record.journal.Journal``): a gap
opened (camera, start, end or null while it goes on, reason) or the open gaps of a camera closed (camera,
end). Gaps change a few times an hour, so a sync each costs nothing. Replaying the lines in order gives the
gaps back, the same line twice gives one gap. A line longer than ``MAX_LINE`` or with a field out of place
is skipped with a warning.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from edgeagent.config_base import NAME_PATTERN
from edgeagent.record.journal import dump_line, load_object, moment, read_journal
from edgeagent.record.model import GapReason

JOURNAL_NAME = "gaps.journal"  # in recording.dir, beside the cameras' directories (a camera has no dot)
MAX_LINE = 512  # bytes; a real line is about 100
LINE_BYTES = 110  # about one gap's line, to tell a journal mostly of gaps retention dropped
CAMERA = re.compile(NAME_PATTERN)
_REASONS = {reason.value for reason in GapReason}

GapRow = tuple[str, int, int | None, str]  # camera, start_us, end_us (None: open), reason


@dataclass(frozen=True)
class Opened:
    camera: str
    start_us: int
    end_us: int | None
    reason: str


@dataclass(frozen=True)
class Closed:
    camera: str
    end_us: int


def gap_line(entry: Opened | Closed) -> bytes:
    if isinstance(entry, Closed):
        return dump_line({"camera": entry.camera, "close_us": entry.end_us})
    return dump_line({"camera": entry.camera, "start_us": entry.start_us, "end_us": entry.end_us,
                      "reason": entry.reason})  # fmt: skip


def camera_of(document: dict[str, object]) -> str:
    camera = document.get("camera")
    if not isinstance(camera, str) or not CAMERA.match(camera):
        raise ValueError("no valid camera name")
    return camera


def parse_line(raw: bytes) -> Opened | Closed:
    """One line (without its newline); ValueError says what is wrong with it."""
    document = load_object(raw)
    camera = camera_of(document)
    if document.keys() == {"camera", "close_us"}:
        return Closed(camera, moment(document["close_us"]))
    if document.keys() != {"camera", "start_us", "end_us", "reason"}:
        raise ValueError("not the fields of a gap")
    start = moment(document["start_us"])
    end = None if document["end_us"] is None else moment(document["end_us"])
    if end is not None and end < start:
        raise ValueError("a gap that ends before it starts")
    if document["reason"] not in _REASONS:
        raise ValueError("an unknown reason")
    return Opened(camera, start, end, document["reason"])


def replay(db: sqlite3.Connection, path: Path) -> int:
    """Into the gaps table (inside the caller's transaction): the journal's gaps; returns how many were added."""
    added = 0
    for entry in read_journal(path, parse_line, MAX_LINE):
        if isinstance(entry, Closed):
            db.execute("UPDATE gaps SET end_us = MAX(start_us, ?) WHERE camera = ? AND end_us IS NULL",
                       (entry.end_us, entry.camera))  # fmt: skip
            continue
        known = db.execute("SELECT id FROM gaps WHERE camera = ? AND start_us = ? AND reason = ?",
                           (entry.camera, entry.start_us, entry.reason)).fetchone()  # fmt: skip
        if known is None:
            db.execute("INSERT INTO gaps (camera, start_us, end_us, reason) VALUES (?, ?, ?, ?)",
                       (entry.camera, entry.start_us, entry.end_us, entry.reason))  # fmt: skip
            added += 1
        elif entry.end_us is not None:  # the same gap again, written since with its end
            db.execute("UPDATE gaps SET end_us = ? WHERE id = ? AND end_us IS NULL", (entry.end_us, known[0]))
    return added
