"""Retention: oldest video goes first, by age, by total size and by free space; locked video never goes.
Bookmarks older than a camera's oldest kept video go with it.

One ``Retention`` serves every recorder of a recording directory. ``check()`` runs every few seconds in its
own thread and before each new segment (in the writer thread that wants one); it is serialised by a lock.
When the disk is short and only locked video is left, ``short`` is set: recorders pause (a ``disk full``
gap) and start again by themselves once ``can_resume()`` says there is room.

Video waiting for offload is kept like locked video (``RecordingIndex.deletable``); ``before_delete``
hooks run before anything is deleted, so the offloader can queue what must go first.
``held_for_offload`` says how many of the kept bytes only wait for their upload.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edgeagent.record.index import RecordingIndex
from edgeagent.record.model import Segment
from edgeagent.record.settings import RecordingSection

log = logging.getLogger(__name__)

RESUME_HEADROOM_BYTES = 1_000_000  # above min_free before a paused recorder starts again: no flapping
RESUME_HEADROOM_SHARE = 0.01


class Retention:
    def __init__(self, settings: RecordingSection, index: RecordingIndex) -> None:
        self.settings = settings
        self.index = index
        self.short = False  # the disk is below min_free and nothing unlocked is left to delete
        self.deleted = 0
        self.deleted_bytes = 0
        self.before_delete: list[Callable[[], object]] = []  # run (in this thread) before any deletion
        self.held_for_offload = 0  # when short: bytes kept only because they wait for offload
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- disk figures -----------------------------------------------------------------------------

    def disk(self) -> tuple[int, int]:
        """(free bytes for us, size of the file system)."""
        stats = os.statvfs(self.settings.dir)
        return stats.f_bavail * stats.f_frsize, stats.f_blocks * stats.f_frsize

    def min_free_bytes(self, total: int) -> int:
        return self.settings.min_free_bytes(total)

    def headroom(self, total: int) -> int:
        return max(RESUME_HEADROOM_BYTES, int(total * RESUME_HEADROOM_SHARE))

    def can_resume(self) -> bool:
        """Room for a paused recorder (also one paused by a disk someone else filled)."""
        free, total = self.disk()
        return not self.short and free >= self.min_free_bytes(total) + self.headroom(total)

    # -- the check --------------------------------------------------------------------------------

    def check(self) -> bool:
        """Delete what must go; returns (and sets) ``short``."""
        with self._lock:
            try:
                self.short = self._check()
            except Exception:
                log.exception("retention check failed")
            return self.short

    def _check(self) -> bool:
        cutoff = datetime.now(UTC) - timedelta(seconds=self.settings.retain_s)
        free, total = self.disk()
        # Once short, room is made up to a headroom above min_free before recording resumes: no flapping.
        need_free = self.min_free_bytes(total) + (self.headroom(total) if self.short else 0)
        max_bytes = self.settings.max_bytes_of(total)
        stored = self.index.total_bytes() if max_bytes is not None else 0
        # The cheap questions first: most checks find nothing to do and must cost next to nothing.
        if not (free < need_free or (max_bytes is not None and stored > max_bytes)
                or self.index.any_ended_before(cutoff)):  # fmt: skip
            return free < need_free
        for hook in self.before_delete:
            hook()
        deleted_before = self.deleted
        while True:
            candidates = self.index.deletable(limit=64)
            progress = False
            for segment in candidates:
                expired = segment.end < cutoff
                too_big = max_bytes is not None and stored > max_bytes
                if not (expired or too_big or free < need_free):
                    break
                reason = "age" if expired else "max_bytes" if too_big else "min_free"
                freed = self._delete(segment, reason)
                stored -= segment.bytes
                free += freed
                progress = True
            if not progress:
                break
            free, total = self.disk()
        if self.deleted != deleted_before:
            self.index.delete_gaps_before(cutoff)
            self.index.delete_bookmarks_before_video(cutoff)  # a mark with no video left to show
        short = free < need_free
        self.held_for_offload = self.index.offload_pending_bytes() if short else 0
        if short and not self.short:
            log.warning("recording disk short: %d bytes free, %d wanted; only locked video (or %d bytes waiting "
                        "for offload) is left", free, need_free, self.held_for_offload)  # fmt: skip
        return short

    def _delete(self, segment: Segment, reason: str) -> int:
        try:
            size = segment.path.stat().st_size
            segment.path.unlink()
        except FileNotFoundError:
            size = 0
        self.index.delete_segment(segment.path)
        self.deleted += 1
        self.deleted_bytes += size
        log.debug("retention (%s): deleted %s", reason, segment.path)
        _remove_empty_parents(segment.path.parent, self.settings.dir)
        return size

    # -- the thread -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="record-retention", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.retention_check_s):
            self.check()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


def _remove_empty_parents(directory: Path, root: Path) -> None:
    while directory != root and root in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent
