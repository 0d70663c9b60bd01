"""The recording index's tables, and its one time format: integer microseconds since the epoch (UTC),
so a segment's start survives exactly."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY,
    camera TEXT NOT NULL,
    path TEXT NOT NULL UNIQUE,
    start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    codec TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    sha256 TEXT,
    prev_sha256 TEXT,
    open INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS segments_camera_start ON segments (camera, start_us);
CREATE INDEX IF NOT EXISTS segments_start ON segments (start_us);
CREATE INDEX IF NOT EXISTS segments_end ON segments (end_us);
CREATE TABLE IF NOT EXISTS gaps (
    id INTEGER PRIMARY KEY,
    camera TEXT NOT NULL,
    start_us INTEGER NOT NULL,
    end_us INTEGER,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS gaps_camera_start ON gaps (camera, start_us);
CREATE TABLE IF NOT EXISTS locks (
    id TEXT PRIMARY KEY,
    camera TEXT NOT NULL,
    start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL,
    reason TEXT NOT NULL,
    created_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

# Files that must reach object storage (edgeagent.offload.queue owns the rows). Here because retention
# reads it: a segment with a row not yet done is kept like a locked one.
OFFLOAD_SCHEMA = """
CREATE TABLE IF NOT EXISTS offload_queue (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    key TEXT,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_us INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    added_us INTEGER NOT NULL,
    done_us INTEGER
);
CREATE INDEX IF NOT EXISTS offload_queue_pending ON offload_queue (done_us, next_us);
"""

# The schema's version, in SQLite's ``user_version``. 0 is a database made before versions were kept (the
# tables above, as version 1 had them). Every change is additive (CREATE ... IF NOT EXISTS), so an older
# agent still opens a newer database, and ``migrate`` only ever raises the number.
SCHEMA_VERSION = 2
# Version 2: marks on the recording timeline (edgeagent.record.bookmark_table owns the rows).
BOOKMARKS_SCHEMA = """
CREATE TABLE IF NOT EXISTS bookmarks (
    id INTEGER PRIMARY KEY,
    camera TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bookmarks_camera_at ON bookmarks (camera, at_us);
"""


def migrate(db: sqlite3.Connection) -> int:
    """Bring a database (fresh, version 0 or 1) up to ``SCHEMA_VERSION``; returns the version it had."""
    found = int(db.execute("PRAGMA user_version").fetchone()[0])
    db.executescript(BOOKMARKS_SCHEMA)  # additive (IF NOT EXISTS): right whatever version a database says
    if found < SCHEMA_VERSION:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return found


def to_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware (UTC)")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(value: int) -> datetime:
    seconds, micros = divmod(value, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)


def now_utc() -> datetime:
    return datetime.now(UTC)
