"""The recording index's bookmarks table (schema version 2): marks on a camera's timeline, kept as long as
video of that camera older than them is kept.

A part of :class:`edgeagent.record.index.RecordingIndex` (its base class), on the index's one connection;
blocking like the rest of it. Every bookmark stored also goes to its journal (``bookmarkjournal``), which
gives them back after the database is lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from edgeagent.record import bookmarkjournal
from edgeagent.record.bookmarkjournal import bookmark_line, bookmark_lines
from edgeagent.record.journal import Journal
from edgeagent.record.model import Bookmark
from edgeagent.record.schema import from_us, to_us
from edgeagent.record.sqlite_store import SqliteStore

MAX_BOOKMARKS = 1000  # one listing (or one export's manifest) holds at most this many
REWRITE_PAGE = 10_000  # rows read at a time when the journal is written anew


class BookmarkTable(SqliteStore):
    bookmark_journal: Journal  # made by the index, once the table is there

    def add_bookmarks(self, bookmarks: list[Bookmark]) -> None:
        """Store ``bookmarks`` in one transaction."""
        if not bookmarks:
            return
        with self._tx() as db:
            db.executemany(
                "INSERT INTO bookmarks (camera, at_us, kind, source, text) VALUES (?, ?, ?, ?, ?)",
                [(b.camera, to_us(b.at), b.kind, b.source, b.text) for b in bookmarks],
            )
        self.bookmark_journal.append(bookmark_lines(bookmarks))

    def bookmarks(self, camera: str, start: datetime, end: datetime, limit: int = MAX_BOOKMARKS) -> list[Bookmark]:
        """Bookmarks of ``camera`` within [start, end), oldest first, at most ``limit``."""
        rows = self._query(
            "SELECT at_us, kind, source, text FROM bookmarks WHERE camera = ? AND at_us >= ? AND at_us < ? "
            "ORDER BY at_us, id LIMIT ?",
            (camera, to_us(start), to_us(end), max(0, limit)),
        )
        return [Bookmark(camera, from_us(at), kind, source, text) for at, kind, source, text in rows]

    def delete_bookmarks_before_video(self, cutoff: datetime) -> int:
        """Retention: each camera's bookmarks older than its oldest kept video go (older than ``cutoff`` for a
        camera with no video at all); returns how many went.

        Per camera on the indexes, never a scan of the table: a hostile camera may have left many rows."""
        with self._tx() as db:
            # The distinct cameras by index hops (SQLite has no skip-scan without statistics).
            cameras = [row[0] for row in db.execute(
                "WITH RECURSIVE c(name) AS (SELECT MIN(camera) FROM bookmarks UNION ALL "
                "SELECT (SELECT MIN(camera) FROM bookmarks WHERE camera > c.name) FROM c WHERE c.name IS NOT NULL) "
                "SELECT name FROM c WHERE name IS NOT NULL"
            )]  # fmt: skip
            deleted = 0
            for camera in cameras:
                (oldest,) = db.execute("SELECT MIN(start_us) FROM segments WHERE camera = ?", (camera,)).fetchone()
                bound = oldest if oldest is not None else to_us(cutoff)
                deleted += db.execute("DELETE FROM bookmarks WHERE camera = ? AND at_us < ?", (camera, bound)).rowcount
            left = int(db.execute("SELECT COUNT(*) FROM bookmarks").fetchone()[0]) if deleted else 0
        if deleted:
            self.bookmark_journal.shrink(left)
        return deleted

    def _bookmark_lines(self) -> Iterator[bytes]:
        """Every bookmark as its journal line, in the order stored, read a page at a time."""
        after = -1
        while rows := self._query("SELECT id, camera, at_us, kind, source, text FROM bookmarks WHERE id > ? "
                                  "ORDER BY id LIMIT ?", (after, REWRITE_PAGE)):  # fmt: skip
            for row_id, *row in rows:
                yield bookmark_line((row[0], row[1], row[2], row[3], row[4]))
                after = row_id

    def restore_bookmarks(self) -> int:
        """Reload the bookmarks from their journal (after the database was lost); returns how many."""
        with self._tx() as db:
            return bookmarkjournal.replay(db, self.bookmark_journal.path)
