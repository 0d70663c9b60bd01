"""The recording index: segments, gaps, bookmarks and locks in SQLite, rebuilt from the files whenever it is
lost (the gaps and bookmarks from their journals, ``gapjournal`` and ``bookmarkjournal``; the locks from
their copy, ``lockcopy``).

Every method is synchronous and thread-safe (one connection behind a lock). On the event loop call them
through ``asyncio.to_thread`` (or the ``a*`` wrappers below): SQLite blocks on the disk.

Times are stored as integer microseconds since the epoch (UTC), so a segment's start survives exactly.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from edgeagent.record import bookmarkjournal, gapjournal
from edgeagent.record.bookmark_table import BookmarkTable
from edgeagent.record.gapjournal import Closed, GapRow, Opened, gap_line
from edgeagent.record.growing import join_spans
from edgeagent.record.journal import Journal
from edgeagent.record.lockcopy import LOCK_COLUMNS, read_copy, write_copy
from edgeagent.record.model import Gap, GapReason, Lock, Segment
from edgeagent.record.schema import OFFLOAD_SCHEMA, SCHEMA, from_us, migrate, now_utc, to_us

__all__ = ["OFFLOAD_SCHEMA", "RecordingIndex", "from_us", "now_utc", "to_us"]


class RecordingIndex(BookmarkTable):  # a SqliteStore, with the bookmarks (lost with the file: not in segments)
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(self.path)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a power cut may lose the last commits but never corrupts the file, and the
        # index can always be rebuilt from the segments. Fewer syncs, less flash wear.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA + OFFLOAD_SCHEMA)
        migrate(self._db)  # the tables added since (bookmarks); an existing database keeps every row
        # The gaps' reasons and the bookmarks also go to journals beside the segments: a lost database keeps them.
        self.gap_journal = Journal(self.path.parent / gapjournal.JOURNAL_NAME, self._gap_lines, gapjournal.LINE_BYTES)
        self.bookmark_journal = Journal(self.path.parent / bookmarkjournal.JOURNAL_NAME, self._bookmark_lines,
                                        bookmarkjournal.LINE_BYTES)  # fmt: skip
        self.gap_journal.seed()
        self.bookmark_journal.seed()

    # -- segments ---------------------------------------------------------------------------------

    @staticmethod
    def _segment(row: tuple[Any, ...]) -> Segment:
        camera, path, start, end, size, codec, width, height, sha, prev = row
        return Segment(camera, Path(path), from_us(start), from_us(end), size, codec, width, height, sha or "", prev)

    _SEGMENT_COLUMNS = "camera, path, start_us, end_us, bytes, codec, width, height, sha256, prev_sha256"

    def segments(self, camera: str, start: datetime | None = None, end: datetime | None = None) -> list[Segment]:
        """Closed segments of ``camera`` that overlap [start, end), oldest first."""
        lo = to_us(start) if start else -(2**62)
        hi = to_us(end) if end else 2**62
        rows = self._query(
            f"SELECT {self._SEGMENT_COLUMNS} FROM segments WHERE camera = ? AND open = 0 "
            "AND end_us > ? AND start_us < ? ORDER BY start_us",
            (camera, lo, hi),
        )
        return [self._segment(row) for row in rows]

    def all_segments(self) -> list[Segment]:
        rows = self._query(f"SELECT {self._SEGMENT_COLUMNS} FROM segments WHERE open = 0 ORDER BY start_us")
        return [self._segment(row) for row in rows]

    def cameras(self) -> list[str]:
        return [row[0] for row in self._query("SELECT DISTINCT camera FROM segments ORDER BY camera")]

    def last_sha256(self, camera: str) -> str | None:
        rows = self._query(
            "SELECT sha256 FROM segments WHERE camera = ? AND open = 0 ORDER BY start_us DESC LIMIT 1", (camera,)
        )
        return rows[0][0] if rows else None

    def open_segment(self, camera: str, path: Path, start: datetime, codec: str, width: int, height: int) -> None:
        """The segment being written: marked open, so that a crash leaves a trace for repair."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO segments (camera, path, start_us, end_us, bytes, codec, width, height, open) "
                "VALUES (?, ?, ?, ?, 0, ?, ?, ?, 1)",
                (camera, str(path), to_us(start), to_us(start), codec, width, height),
            )

    def open_segments(self) -> list[tuple[str, Path, datetime, str, int, int]]:
        rows = self._query("SELECT camera, path, start_us, codec, width, height FROM segments WHERE open = 1")
        return [(c, Path(p), from_us(s), codec, w, h) for c, p, s, codec, w, h in rows]

    def close_segment(self, segment: Segment) -> None:
        """Insert or finish the row of ``segment`` (closed, with its hash)."""
        with self._tx() as db:
            db.execute("DELETE FROM segments WHERE path = ?", (str(segment.path),))
            db.execute(
                f"INSERT INTO segments ({self._SEGMENT_COLUMNS}, open) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                (
                    segment.camera, str(segment.path), to_us(segment.start), to_us(segment.end), segment.bytes,
                    segment.codec, segment.width, segment.height, segment.sha256, segment.prev_sha256,
                ),
            )  # fmt: skip

    def known_paths(self) -> set[Path]:
        return {Path(row[0]) for row in self._query("SELECT path FROM segments")}

    def clear(self) -> None:
        """Forget every segment and gap (before a reindex); locks stay."""
        with self._tx() as db:
            db.execute("DELETE FROM segments")
            db.execute("DELETE FROM gaps")

    def delete_segment(self, path: Path) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM segments WHERE path = ?", (str(path),))

    def deletable(self, limit: int = 64) -> list[Segment]:
        """The oldest closed segments that no lock touches and that are not waiting for offload: what
        retention may delete, oldest first."""
        rows = self._query(
            f"SELECT {self._SEGMENT_COLUMNS} FROM segments s WHERE open = 0 AND NOT EXISTS (SELECT 1 FROM locks l "
            "WHERE l.camera = s.camera AND l.start_us < s.end_us AND l.end_us > s.start_us) "
            "AND NOT EXISTS (SELECT 1 FROM offload_queue q WHERE q.path = s.path AND q.done_us IS NULL) "
            "ORDER BY start_us LIMIT ?",
            (limit,),
        )
        return [self._segment(row) for row in rows]

    def offload_pending_bytes(self) -> int:
        """Bytes of segments kept only because they wait for offload (for the disk-short alarm)."""
        return int(self._query("SELECT COALESCE(SUM(bytes), 0) FROM offload_queue WHERE done_us IS NULL "
                               "AND kind = 'segment'")[0][0])  # fmt: skip

    def any_ended_before(self, moment: datetime) -> bool:
        return bool(self._query("SELECT 1 FROM segments WHERE end_us < ? AND open = 0 LIMIT 1", (to_us(moment),)))

    def add_written(self, count: int) -> int:
        """Add to the lifetime count of bytes written to the disk (flash wear); returns the new total."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO counters (name, value) VALUES ('bytes_written', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (count,),
            )
            return int(db.execute("SELECT value FROM counters WHERE name = 'bytes_written'").fetchone()[0])

    def written(self) -> int:
        rows = self._query("SELECT value FROM counters WHERE name = 'bytes_written'")
        return int(rows[0][0]) if rows else 0

    def total_bytes(self) -> int:
        return int(self._query("SELECT COALESCE(SUM(bytes), 0) FROM segments")[0][0])

    def camera_totals(self, camera: str) -> tuple[datetime | None, datetime | None, int]:
        """(oldest start, newest end, bytes) of the closed segments of ``camera``."""
        lo, hi, size = self._query(
            "SELECT MIN(start_us), MAX(end_us), COALESCE(SUM(bytes), 0) FROM segments WHERE camera = ? AND open = 0",
            (camera,),
        )[0]
        return (from_us(lo) if lo is not None else None, from_us(hi) if hi is not None else None, int(size))

    # -- gaps ------------------------------------------------------------------------------------

    def add_gap(self, camera: str, start: datetime, end: datetime | None, reason: GapReason) -> None:
        """A gap; ``end=None`` leaves it open (still going on) until ``close_gaps``."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO gaps (camera, start_us, end_us, reason) VALUES (?, ?, ?, ?)",
                (camera, to_us(start), None if end is None else to_us(end), reason.value),
            )
        self.gap_journal.append(gap_line(Opened(camera, to_us(start), None if end is None else to_us(end),
                                                reason.value)))  # fmt: skip

    def close_gaps(self, camera: str, end: datetime) -> None:
        """Recording resumed at ``end``: every open gap of ``camera`` ends there."""
        with self._tx() as db:
            db.execute("UPDATE gaps SET end_us = MAX(start_us, ?) WHERE camera = ? AND end_us IS NULL",
                       (to_us(end), camera))  # fmt: skip
        self.gap_journal.append(gap_line(Closed(camera, to_us(end))))

    def has_open_gap(self, camera: str) -> bool:
        return bool(self._query("SELECT 1 FROM gaps WHERE camera = ? AND end_us IS NULL LIMIT 1", (camera,)))

    def gaps(self, camera: str, start: datetime | None = None, end: datetime | None = None) -> list[Gap]:
        """Gaps of ``camera`` overlapping [start, end); an open gap ends now."""
        now = to_us(now_utc())
        lo = to_us(start) if start else -(2**62)
        hi = to_us(end) if end else 2**62
        rows = self._query(
            "SELECT start_us, COALESCE(end_us, ?), reason FROM gaps WHERE camera = ? "
            "AND COALESCE(end_us, ?) > ? AND start_us < ? ORDER BY start_us",
            (now, camera, now, lo, hi),
        )
        return [Gap(camera, from_us(s), from_us(e), GapReason(r)) for s, e, r in rows]

    def delete_gaps_before(self, moment: datetime) -> None:
        with self._tx() as db:
            deleted = db.execute("DELETE FROM gaps WHERE end_us IS NOT NULL AND end_us < ?", (to_us(moment),)).rowcount
            left = int(db.execute("SELECT COUNT(*) FROM gaps").fetchone()[0]) if deleted else 0
        if deleted:
            self.gap_journal.shrink(left)

    def _gap_rows(self) -> list[GapRow]:
        rows = self._query("SELECT camera, start_us, end_us, reason FROM gaps ORDER BY id")
        return [(camera, start, end, reason) for camera, start, end, reason in rows]

    def _gap_lines(self) -> Iterator[bytes]:
        yield from (gap_line(Opened(*row)) for row in self._gap_rows())

    def restore_gaps(self) -> int:
        """Reload the gaps from their journal (after the database was lost); returns how many."""
        with self._tx() as db:
            return gapjournal.replay(db, self.gap_journal.path)

    # -- spans -----------------------------------------------------------------------------------

    def spans(
        self, camera: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[tuple[datetime, datetime]]:
        """Continuous recorded time of ``camera`` (closed segments) within [start, end), clipped to it."""
        return join_spans(self.segments(camera, start, end), start, end)

    # -- locks -----------------------------------------------------------------------------------

    def add_lock(self, camera: str, start: datetime, end: datetime, reason: str) -> Lock:
        if end <= start:
            raise ValueError("a lock must end after it starts")
        lock = Lock(uuid.uuid4().hex, camera, start, end, reason, now_utc())
        with self._tx() as db:
            db.execute(
                "INSERT INTO locks (id, camera, start_us, end_us, reason, created_us) VALUES (?, ?, ?, ?, ?, ?)",
                (lock.id, camera, to_us(start), to_us(end), reason, to_us(lock.created)),
            )
        self._mirror_locks()
        return lock

    def locks(self, camera: str | None = None) -> list[Lock]:
        sql = "SELECT id, camera, start_us, end_us, reason, created_us FROM locks"
        rows = self._query(sql + " WHERE camera = ? ORDER BY start_us", (camera,)) if camera else self._query(
            sql + " ORDER BY start_us"
        )
        return [Lock(i, c, from_us(s), from_us(e), r, from_us(cr)) for i, c, s, e, r, cr in rows]

    def remove_lock(self, lock_id: str) -> bool:
        with self._tx() as db:
            removed = db.execute("DELETE FROM locks WHERE id = ?", (lock_id,)).rowcount > 0
        self._mirror_locks()
        return removed

    @property
    def locks_file(self) -> Path:
        return self.path.with_name(self.path.name + ".locks.json")

    def _mirror_locks(self) -> None:
        """Locks are copied beside the database: losing it must not free locked evidence for deletion."""
        write_copy(self.locks_file, self._query(f"SELECT {LOCK_COLUMNS} FROM locks ORDER BY start_us"))

    def restore_locks(self) -> int:
        """Reload the locks from their copy (after the database was lost); returns how many."""
        entries = read_copy(self.locks_file)
        with self._tx() as db:
            for entry in entries:
                db.execute(f"INSERT OR IGNORE INTO locks ({LOCK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", entry)
        return len(entries)

    # -- async wrappers for the event loop ----------------------------------------------------------

    async def asegments(self, camera: str, start: datetime | None = None, end: datetime | None = None) -> list[Segment]:
        return await asyncio.to_thread(self.segments, camera, start, end)

    async def agaps(self, camera: str, start: datetime | None = None, end: datetime | None = None) -> list[Gap]:
        return await asyncio.to_thread(self.gaps, camera, start, end)

    async def aspans(
        self, camera: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[tuple[datetime, datetime]]:
        return await asyncio.to_thread(self.spans, camera, start, end)

    async def aadd_lock(self, camera: str, start: datetime, end: datetime, reason: str) -> Lock:
        return await asyncio.to_thread(self.add_lock, camera, start, end, reason)

    async def alocks(self, camera: str | None = None) -> list[Lock]:
        return await asyncio.to_thread(self.locks, camera)

    async def aremove_lock(self, lock_id: str) -> bool:
        return await asyncio.to_thread(self.remove_lock, lock_id)
