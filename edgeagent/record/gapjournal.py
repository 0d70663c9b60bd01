"""Why recording stopped, kept on the disk beside the segments: what the index would lose with its database.

The segment files give back the recorded time (``repair.reindex``), not why the holes between them are
there (camera offline, agent crashed, disk full...). So every change to the index's gaps is also appended,
as one JSON line, to ``<recording.dir>/gaps.journal`` and fsync-ed: a gap opened (camera, start, end or
null while it goes on, reason) or the open gaps of a camera closed (camera, end). Gaps change a few times
an hour, so a sync each costs nothing. Replaying the lines in order gives the gaps back, the same line
twice gives one gap. A journal that lost an append (a full disk) is written again whole from the index at
its next change, and one that holds far more than the gaps retention left is written again too (a new
file renamed over the old), so it stays about the size of what it describes.

Reading trusts nothing: a line longer than ``MAX_LINE``, not JSON, or with a field out of place is skipped
with a warning (at most ``MAX_WARNINGS`` lines, then a count), never an error; a torn last line (a crash
mid-append) is skipped, and the next append starts on a line of its own.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeagent.config_base import NAME_PATTERN
from edgeagent.record.durable import sync_dir
from edgeagent.record.model import GapReason

log = logging.getLogger(__name__)

JOURNAL_NAME = "gaps.journal"  # in recording.dir, beside the cameras' directories (a camera has no dot)
MAX_LINE = 512  # bytes; a real line is about 100
MAX_WARNINGS = 10  # lines named in the log when a journal is read; the rest are counted
REWRITE_MIN_BYTES = 64 * 1024  # below this the journal is never rewritten for its size
LINE_BYTES = 110  # about one gap's line, to tell a journal mostly of gaps retention dropped
MAX_US = 253_402_300_799_999_999  # the last microsecond of the year 9999: what a datetime holds
_CAMERA = re.compile(NAME_PATTERN)
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


def _line(entry: Opened | Closed) -> bytes:
    if isinstance(entry, Closed):
        document: dict[str, Any] = {"camera": entry.camera, "close_us": entry.end_us}
    else:
        document = {"camera": entry.camera, "start_us": entry.start_us, "end_us": entry.end_us, "reason": entry.reason}
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"


def _moment(value: object) -> int:
    if type(value) is not int or not 0 <= value <= MAX_US:
        raise ValueError("a time that is not microseconds since 1970")
    return value


def parse_line(raw: bytes) -> Opened | Closed:
    """One line (without its newline); ValueError says what is wrong with it."""
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError("not a JSON line") from None
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    camera = document.get("camera")
    if not isinstance(camera, str) or not _CAMERA.match(camera):
        raise ValueError("no valid camera name")
    if document.keys() == {"camera", "close_us"}:
        return Closed(camera, _moment(document["close_us"]))
    if document.keys() != {"camera", "start_us", "end_us", "reason"}:
        raise ValueError("not the fields of a gap")
    start = _moment(document["start_us"])
    end = None if document["end_us"] is None else _moment(document["end_us"])
    if end is not None and end < start:
        raise ValueError("a gap that ends before it starts")
    if document["reason"] not in _REASONS:
        raise ValueError("an unknown reason")
    return Opened(camera, start, end, document["reason"])


def read_journal(path: Path) -> Iterator[Opened | Closed]:
    """The journal's entries in order; what cannot be read is skipped with a warning."""
    bad = 0

    def skip(number: int, why: str) -> None:
        nonlocal bad
        bad += 1
        if bad <= MAX_WARNINGS:
            log.warning("recording: %s line %d: %s; ignored", path.name, number, why)

    try:
        file = open(path, "rb")  # noqa: SIM115 (closed below; a generator)
    except FileNotFoundError:
        return
    except OSError as exc:
        log.warning("recording: %s cannot be read (%s); no gap reasons restored", path, exc)
        return
    with file:
        number = 0
        while raw := file.readline(MAX_LINE + 1):
            number += 1
            if not raw.endswith(b"\n"):
                if len(raw) <= MAX_LINE:  # the end of the file: torn by a crash mid-append
                    log.info("recording: %s ends in a torn line; ignored", path.name)
                    break
                while (rest := file.readline(1 << 16)) and not rest.endswith(b"\n"):
                    pass  # an overlong line, read past in bounded pieces
                skip(number, f"longer than {MAX_LINE} bytes")
                continue
            try:
                yield parse_line(raw[:-1])
            except ValueError as exc:
                skip(number, str(exc))
    if bad > MAX_WARNINGS:
        log.warning("recording: %s: %d more lines ignored", path.name, bad - MAX_WARNINGS)


def replay(db: sqlite3.Connection, path: Path) -> int:
    """Into the gaps table (inside the caller's transaction): the journal's gaps; returns how many were added."""
    added = 0
    for entry in read_journal(path):
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


class GapJournal:
    """Appends to the journal; ``rows()`` gives the index's gaps, oldest first, for a rewrite."""

    def __init__(self, path: Path, rows: Callable[[], list[GapRow]]) -> None:
        self.path = path
        self.rows = rows
        self._lock = threading.Lock()
        self._whole = True  # False after an append failed: the next change writes the journal anew
        self._warned = False

    def opened(self, camera: str, start_us: int, end_us: int | None, reason: str) -> None:
        self._append(Opened(camera, start_us, end_us, reason))

    def closed(self, camera: str, end_us: int) -> None:
        self._append(Closed(camera, end_us))

    def _append(self, entry: Opened | Closed) -> None:
        with self._lock:
            if not self._whole:
                self._rewrite()
                return
            try:
                _append_line(self.path, _line(entry))
            except OSError as exc:
                self._whole = False
                self._failed(exc)

    def shrink(self, gaps_left: int) -> None:
        """After retention dropped gaps: written anew when it is mostly lines of gaps no longer there."""
        with self._lock:
            try:
                size = self.path.stat().st_size
            except OSError:
                size = 0
            if not self._whole or size > max(REWRITE_MIN_BYTES, 2 * LINE_BYTES * gaps_left):
                self._rewrite()

    def seed(self) -> None:
        """A journal that is not there yet (an index older than journals) starts with the index's gaps."""
        with self._lock:
            if not self.path.exists() and self.rows():
                self._rewrite()

    def _rewrite(self) -> None:
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            data = b"".join(_line(Opened(*row)) for row in self.rows())
            with open(temporary, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
            sync_dir(self.path.parent)
        except (OSError, sqlite3.Error) as exc:
            self._whole = False
            temporary.unlink(missing_ok=True)
            self._failed(exc)
            return
        self._whole = True
        self._warned = False

    def _failed(self, exc: Exception) -> None:
        if not self._warned:  # once until it works again: a full disk would say it at every gap
            log.warning("recording: %s not written (%s); the index keeps the gaps, the journal is written "
                        "again at the next change", self.path, exc)  # fmt: skip
            self._warned = True


def _append_line(path: Path, line: bytes) -> None:
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line  # after a torn line: this one stands on its own
        view = memoryview(line)
        while view:  # a short write (a disk filling up) ends in an error on the next one
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    if not size:
        sync_dir(path.parent)  # the file is new: its name must survive a power cut too
