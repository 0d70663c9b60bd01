"""The bookmarks, kept on the disk beside the segments: what the index would lose with its database.

Every batch of bookmarks the index stores is also appended, one JSON line each (camera, time, kind, source,
text), to ``<recording.dir>/bookmarks.journal`` (an ``edgeagent.record.journal.Journal``), one sync per
batch. ``repair.reindex`` replays it; the same line twice gives one bookmark. Retention's pruning rewrites it
once it is mostly bookmarks no longer kept. A line is trusted no more than a camera's event: a kind off the
closed list, a text longer than ``MAX_TEXT_CHARS`` or unprintable, a bad camera name or time is skipped with
a warning.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edgeagent.record.bookmarks import MAX_TEXT_CHARS, ONVIF, ONVIF_KINDS, PICTURE, PICTURE_KINDS
from edgeagent.record.gapjournal import camera_of
from edgeagent.record.journal import dump_line, load_object, moment, read_journal
from edgeagent.record.model import Bookmark
from edgeagent.record.schema import to_us

JOURNAL_NAME = "bookmarks.journal"  # in recording.dir, beside gaps.journal
MAX_LINE = 4096  # bytes: 160 characters, each at most 12 as JSON escapes (a surrogate pair), and the rest
LINE_BYTES = 140  # about one bookmark's line, to tell a journal mostly of bookmarks retention dropped
_KINDS = {ONVIF: frozenset(ONVIF_KINDS), PICTURE: frozenset(PICTURE_KINDS)}
_FIELDS = {"camera", "at_us", "kind", "source", "text"}

BookmarkRow = tuple[str, int, str, str, str]  # camera, at_us, kind, source, text


def bookmark_line(row: BookmarkRow) -> bytes:
    camera, at_us, kind, source, text = row
    return dump_line({"camera": camera, "at_us": at_us, "kind": kind, "source": source, "text": text})


def bookmark_lines(bookmarks: list[Bookmark]) -> bytes:
    return b"".join(bookmark_line((b.camera, to_us(b.at), b.kind, b.source, b.text)) for b in bookmarks)


def parse_line(raw: bytes) -> BookmarkRow:
    """One line (without its newline); ValueError says what is wrong with it."""
    document = load_object(raw)
    camera = camera_of(document)
    if document.keys() != _FIELDS:
        raise ValueError("not the fields of a bookmark")
    at_us = moment(document["at_us"])
    source, kind, text = document["source"], document["kind"], document["text"]
    if not isinstance(source, str) or kind not in _KINDS.get(source, ()):
        raise ValueError("an unknown kind or source")
    if not isinstance(text, str) or len(text) > MAX_TEXT_CHARS or not text.isprintable():
        raise ValueError("a text that is not short and printable")
    return camera, at_us, kind, source, text


def replay(db: sqlite3.Connection, path: Path) -> int:
    """Into the bookmarks table (inside the caller's transaction): the journal's bookmarks that are not there
    yet; returns how many were added."""
    added = 0
    for row in read_journal(path, parse_line, MAX_LINE):
        known = db.execute("SELECT 1 FROM bookmarks WHERE camera = ? AND at_us = ? AND kind = ? AND source = ? "
                           "AND text = ? LIMIT 1", row).fetchone()  # fmt: skip
        if known is None:
            db.execute("INSERT INTO bookmarks (camera, at_us, kind, source, text) VALUES (?, ?, ?, ?, ?)", row)
            added += 1
    return added

