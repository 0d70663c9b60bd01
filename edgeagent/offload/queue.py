"""The offload queue: a table in the recording index, so that it survives restarts and retention sees it.

A row is a file that must reach object storage: a segment (of a locked range, or any segment with
``offload.segments``) or an export zip. A row stays after its upload (``done_us`` set) so the file is not
queued again; it goes when the segment is deleted. While ``done_us`` is NULL retention keeps the segment
(``RecordingIndex.deletable``). Its own connection to the index file (WAL: readers and one writer at a
time); every method blocks, call it in a thread.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from edgeagent.record.index import OFFLOAD_SCHEMA, now_utc, to_us
from edgeagent.record.sqlite_store import SqliteStore

JITTER = 0.1  # retries spread by this share, so many cabinets do not come back in step


@dataclass(frozen=True)
class Item:
    id: int
    path: Path
    kind: str  # "segment" or "export"
    key: str | None  # the object key; None: made from the segment's place under the recording directory
    bytes: int
    sha256: str
    attempts: int
    last_error: str | None


class OffloadQueue(SqliteStore):
    def __init__(self, index_path: Path) -> None:
        super().__init__(index_path)
        self._db.executescript(OFFLOAD_SCHEMA)

    def enqueue_segments(self, every_segment: bool) -> int:
        """Queue the closed segments that must go and are not queued yet (those of a lock; all of them
        with ``every_segment``); forget finished rows of deleted segments. Returns how many were queued."""
        now = to_us(now_utc())
        with self._tx() as db:
            added = db.execute(
                "INSERT OR IGNORE INTO offload_queue (path, kind, bytes, sha256, added_us) "
                "SELECT path, 'segment', bytes, sha256, ? FROM segments s WHERE open = 0 AND sha256 IS NOT NULL "
                "AND (? OR EXISTS (SELECT 1 FROM locks l WHERE l.camera = s.camera AND l.start_us < s.end_us "
                "AND l.end_us > s.start_us))",
                (now, 1 if every_segment else 0),
            ).rowcount
            db.execute("DELETE FROM offload_queue WHERE kind = 'segment' AND done_us IS NOT NULL "
                       "AND path NOT IN (SELECT path FROM segments)")  # fmt: skip
        return max(0, added)

    def enqueue_file(self, path: Path, key: str, size: int, sha256: str, kind: str = "export") -> None:
        """A file that is not a segment (an export zip) under its own object key."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO offload_queue (path, kind, key, bytes, sha256, added_us) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(path) DO UPDATE SET key = excluded.key, bytes = excluded.bytes, "
                "sha256 = excluded.sha256, done_us = NULL, attempts = 0, next_us = 0, last_error = NULL",
                (str(path), kind, key, size, sha256, to_us(now_utc())),
            )

    def next_due(self) -> Item | None:
        """The oldest pending row whose retry time has come."""
        rows = self._query(
            "SELECT id, path, kind, key, bytes, sha256, attempts, last_error FROM offload_queue "
            "WHERE done_us IS NULL AND next_us <= ? ORDER BY next_us, id LIMIT 1",
            (to_us(now_utc()),),
        )
        if not rows:
            return None
        row_id, path, kind, key, size, sha, attempts, error = rows[0]
        return Item(row_id, Path(path), kind, key, size, sha, attempts, error)

    def next_retry_s(self) -> float | None:
        """Seconds until the earliest pending row is due (0 if one is due now); None when none is pending."""
        rows = self._query("SELECT MIN(next_us) FROM offload_queue WHERE done_us IS NULL")
        if rows[0][0] is None:
            return None
        return max(0.0, (rows[0][0] - to_us(now_utc())) / 1e6)

    def done(self, item: Item) -> None:
        with self._tx() as db:
            db.execute("UPDATE offload_queue SET done_us = ?, last_error = NULL WHERE id = ?",
                       (to_us(now_utc()), item.id))  # fmt: skip

    def failed(self, item: Item, error: str, initial_s: float, max_s: float) -> float:
        """Note the failure and put the row back for later (doubling waits); returns the wait in seconds."""
        wait = min(max_s, initial_s * 2 ** min(item.attempts, 30))
        wait *= 1 + random.uniform(-JITTER, JITTER)
        with self._tx() as db:
            db.execute("UPDATE offload_queue SET attempts = attempts + 1, next_us = ?, last_error = ? WHERE id = ?",
                       (to_us(now_utc()) + int(wait * 1e6), error[:500], item.id))  # fmt: skip
        return wait

    def drop(self, item: Item) -> None:
        """A file that is gone for good (deleted by hand): nothing left to upload."""
        with self._tx() as db:
            db.execute("DELETE FROM offload_queue WHERE id = ?", (item.id,))

    def pending(self) -> tuple[int, int]:
        """(rows, bytes) still to upload."""
        sql = "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM offload_queue WHERE done_us IS NULL"
        count, size = self._query(sql)[0]
        return int(count), int(size)

    def is_done(self, path: Path) -> bool:
        return bool(self._query("SELECT 1 FROM offload_queue WHERE path = ? AND done_us IS NOT NULL", (str(path),)))

    def knows(self, path: Path) -> bool:
        """The file has a row, pending or done (an export is kept and uploaded once)."""
        return bool(self._query("SELECT 1 FROM offload_queue WHERE path = ?", (str(path),)))
