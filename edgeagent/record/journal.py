"""An append-only journal of JSON lines beside the segments: what the index would lose with its database.

The gap reasons (``gapjournal``) and the bookmarks (``bookmarkjournal``) are each kept in one: every change
is appended as JSON lines and fsync-ed, so replaying the lines in order gives the rows back. A journal that
lost an append (a full disk) is written again whole from the index at its next change, and one that holds
far more than the rows retention left is written again too (a new file renamed over the old), so it stays
about the size of what it describes.

Reading trusts nothing: a line longer than the journal's ``max_line``, not JSON, or one its parser refuses is
skipped with a warning (at most ``MAX_WARNINGS`` lines, then a count), never an error; a torn last line (a
crash mid-append) is skipped, and the next append starts on a line of its own.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar

from edgeagent.record.durable import sync_dir

log = logging.getLogger(__name__)

MAX_WARNINGS = 10  # lines named in the log when a journal is read; the rest are counted
REWRITE_MIN_BYTES = 64 * 1024  # below this a journal is never rewritten for its size
MAX_US = 253_402_300_799_999_999  # the last microsecond of the year 9999: what a datetime holds
WRITE_CHUNK = 1 << 16  # a rewrite writes in pieces of about this size, never the whole journal at once

T = TypeVar("T")


def dump_line(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"


def load_object(raw: bytes) -> dict[str, Any]:
    """One line (without its newline) as a JSON object; ValueError says what is wrong with it."""
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError("not a JSON line") from None
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    return document


def moment(value: object) -> int:
    if type(value) is not int or not 0 <= value <= MAX_US:
        raise ValueError("a time that is not microseconds since 1970")
    return value


def read_journal(path: Path, parse: Callable[[bytes], T], max_line: int) -> Iterator[T]:
    """The journal's entries in order (``parse`` of each line); what cannot be read is skipped with a warning."""
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
        log.warning("recording: %s cannot be read (%s); nothing restored from it", path, exc)
        return
    with file:
        number = 0
        while raw := file.readline(max_line + 1):
            number += 1
            if not raw.endswith(b"\n"):
                if len(raw) <= max_line:  # the end of the file: torn by a crash mid-append
                    log.info("recording: %s ends in a torn line; ignored", path.name)
                    break
                while (rest := file.readline(1 << 16)) and not rest.endswith(b"\n"):
                    pass  # an overlong line, read past in bounded pieces
                skip(number, f"longer than {max_line} bytes")
                continue
            try:
                yield parse(raw[:-1])
            except ValueError as exc:
                skip(number, str(exc))
    if bad > MAX_WARNINGS:
        log.warning("recording: %s: %d more lines ignored", path.name, bad - MAX_WARNINGS)


class Journal:
    """Appends lines to ``path``; ``lines()`` gives the index's rows as lines, oldest first, for a rewrite;
    ``line_bytes`` is about one row's line, to tell a journal mostly of rows retention dropped."""

    def __init__(self, path: Path, lines: Callable[[], Iterable[bytes]], line_bytes: int) -> None:
        self.path = path
        self.lines = lines
        self.line_bytes = line_bytes
        self._lock = threading.Lock()
        self._whole = True  # False after an append failed: the next change writes the journal anew
        self._warned = False

    def append(self, lines: bytes) -> None:
        """One or more whole lines, synced before this returns."""
        with self._lock:
            if not self._whole:
                self._rewrite(self.lines())
                return
            try:
                _append_line(self.path, lines)
            except OSError as exc:
                self._whole = False
                self._failed(exc)

    def shrink(self, rows_left: int) -> None:
        """After retention dropped rows: written anew when it is mostly lines of rows no longer there."""
        with self._lock:
            try:
                size = self.path.stat().st_size
            except OSError:
                size = 0
            if not self._whole or size > max(REWRITE_MIN_BYTES, 2 * self.line_bytes * rows_left):
                self._rewrite(self.lines())

    def seed(self) -> None:
        """A journal that is not there yet (an index older than it) starts with the index's rows."""
        with self._lock:
            if self.path.exists():
                return
            try:
                lines = iter(self.lines())
                first = next(lines, None)
            except sqlite3.Error as exc:
                self._failed(exc)
                return
            if first is not None:
                self._rewrite(chain([first], lines))

    def _rewrite(self, lines: Iterable[bytes]) -> None:
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(temporary, "wb") as file:
                piece: list[bytes] = []
                for line in lines:
                    piece.append(line)
                    if len(piece) * self.line_bytes >= WRITE_CHUNK:
                        file.write(b"".join(piece))
                        piece.clear()
                file.write(b"".join(piece))
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
        if not self._warned:  # once until it works again: a full disk would say it at every change
            log.warning("recording: %s not written (%s); the index keeps its rows, the journal is written "
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
