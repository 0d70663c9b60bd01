"""Exports made over HTTP, kept for object storage: a copy is written while the zip streams to the client,
queued in the offload queue (the recording index, so it survives restarts) and deleted once uploaded and
verified.

The copy is written in the worker thread that cuts the export, into a ``.partial`` file of its own; once
the zip is whole it is fsync-ed, renamed and queued. A client that leaves mid-way leaves no copy (no
export was made). A copy that cannot be written (a full disk) is given up with a warning: the client's
download goes on. The same video (camera and actual range, which make the name) is kept and uploaded
once. At start, a whole copy that a crash left unqueued is queued, partial ones are deleted.

The copies wait on the recording disk, where every byte they hold is one that retention takes from the
oldest video. So they are bounded: all copies together at most ``max_bytes`` (``offload.export_spool_max_mb``),
and never a byte that would take the disk below the recording's ``min_free``. Both are checked before a
copy begins (against the export's expected size) and while it is written; a copy refused is given up, the
download goes on, and the refusal is counted by its reason (``refused``, in the offloader's stats) and
logged once per reason until a copy is kept again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeagent.offload.queue import OffloadQueue
from edgeagent.offload.settings import MIB
from edgeagent.record.durable import sync_dir
from edgeagent.record.writer import file_sha256

log = logging.getLogger(__name__)

SPOOL_DIR = ".offload-exports"  # under recording.dir: a camera's name cannot begin with a dot
PARTIAL = ".partial"
# Why an export was not queued for upload (the keys of ``ExportSpool.refused``).
SPOOL_FULL = "spool full"  # the copies waiting would exceed offload.export_spool_max_mb
DISK_SHORT = "disk short"  # the copy would take the recording disk below recording.min_free
WRITE_FAILED = "write failed"  # the copy could not be written or queued
REASONS = (SPOOL_FULL, DISK_SHORT, WRITE_FAILED)
DISK_CHECK_BYTES = 1 << 20  # free space is looked at again after this much; the copy keeps it in reserve


class _Copy:
    """One export being copied; ``failed`` once a write did not go through or was refused (then dropped)."""

    def __init__(self, final: Path, spool: ExportSpool) -> None:
        self.final = final
        self.spool = spool
        self.partial = final.with_name(f"{final.name}.{uuid.uuid4().hex[:12]}{PARTIAL}")
        self.file = open(self.partial, "xb")  # noqa: SIM115 (closed by commit or discard)
        self.sha256 = hashlib.sha256()
        self.bytes = 0
        self.checked_at = -DISK_CHECK_BYTES  # bytes written when free space was last looked at
        self.failed = False

    def write(self, data: bytes) -> None:
        if self.failed:
            return
        refusal = self.spool.refusal(self, len(data))
        if refusal is not None:
            self.spool.refuse(self, refusal)
            return
        try:
            self.file.write(data)
        except OSError as exc:
            self.spool.refuse(self, WRITE_FAILED, str(exc))
            return
        self.sha256.update(data)
        self.bytes += len(data)

    def discard(self) -> None:
        self.failed = True
        self.spool.forget(self)
        try:
            self.file.close()
        except OSError:
            pass
        self.partial.unlink(missing_ok=True)


class _Tee:
    """The client's sink, and the copy: the client first (a client that left stops the export)."""

    def __init__(self, sink: Any, copy: _Copy) -> None:
        self.sink, self.copy = sink, copy

    def write(self, data: bytes) -> object:
        written = self.sink.write(data)
        self.copy.write(bytes(data))
        return written


class ExportSpool:
    """``max_bytes``: all copies together (None: no bound, 0: none kept); ``min_free(total)``: the bytes the
    recording keeps free on a disk of ``total`` bytes."""

    def __init__(self, directory: Path, queue: OffloadQueue, key_for: Callable[[str], str],
                 wake: Callable[[], None], max_bytes: int | None = None,
                 min_free: Callable[[int], int] | None = None) -> None:  # fmt: skip
        self.dir = directory
        self.queue = queue
        self.key_for = key_for  # the object key of an export's name
        self.wake = wake  # tells the offloader there is work (from any thread)
        self.max_bytes = max_bytes
        self.min_free = min_free or (lambda total: 0)
        self.kept = 0
        self.refused = dict.fromkeys(REASONS, 0)  # exports not queued for upload, by reason
        self._said: set[str] = set()  # reasons logged since the last copy kept
        self._whole_bytes = 0  # of the copies waiting for upload, as of the last look
        self._copies: set[_Copy] = set()  # being written
        self._lock = threading.Lock()  # one commit at a time: two equal exports at once are kept once

    def owns(self, path: Path) -> bool:
        return path.parent == self.dir

    def spooled_bytes(self) -> int:
        """What the copies hold on the disk: those waiting for upload and those being written."""
        return self._whole_bytes + sum(copy.bytes for copy in list(self._copies))

    def wrap(self, name: str, job: Callable[[Any], object], expected_bytes: int = 0) -> Callable[[Any], object]:
        """``job(sink)`` (an export of about ``expected_bytes`` written into ``sink``), also copied and queued
        under ``name`` when there is room for it."""
        if self.max_bytes == 0:
            return job  # keeping HTTP exports is switched off

        def run(sink: Any) -> object:
            copy = self._begin(name, expected_bytes)
            if copy is None:
                return job(sink)
            try:
                result = job(_Tee(sink, copy))
            except BaseException:
                copy.discard()
                raise
            self._commit(copy)
            return result

        return run

    def _begin(self, name: str, expected_bytes: int) -> _Copy | None:
        final = self.dir / name
        try:
            if self.queue.knows(final):
                log.info("offload: export %s is queued already; not kept again", name)
                return None
            self.dir.mkdir(parents=True, exist_ok=True)
            with self._lock:
                self._whole_bytes = _zip_bytes(self.dir)
                refusal = self._no_room(expected_bytes, expected_bytes + DISK_CHECK_BYTES)
                if refusal is not None:
                    self._count(name, refusal, f"about {expected_bytes} bytes")
                    return None
                copy = _Copy(final, self)
                self._copies.add(copy)
                return copy
        except (OSError, sqlite3.Error) as exc:
            with self._lock:
                self._count(name, WRITE_FAILED, str(exc))
            return None

    def _no_room(self, more: int, reserve: int) -> str | None:
        if self.max_bytes is not None and self.spooled_bytes() + more > self.max_bytes:
            return SPOOL_FULL
        stats = os.statvfs(self.dir)
        if stats.f_bavail * stats.f_frsize - reserve < self.min_free(stats.f_blocks * stats.f_frsize):
            return DISK_SHORT
        return None

    def refusal(self, copy: _Copy, size: int) -> str | None:
        """Before ``size`` more bytes of ``copy`` are written (its worker thread): why not, if not."""
        if self.max_bytes is not None and self.spooled_bytes() + size > self.max_bytes:
            return SPOOL_FULL
        if copy.bytes + size - copy.checked_at > DISK_CHECK_BYTES:
            copy.checked_at = copy.bytes
            try:  # room for this write and the next look's worth
                return self._no_room(0, size + DISK_CHECK_BYTES)
            except OSError as exc:
                log.debug("offload: free space unknown (%s)", exc)
                return DISK_SHORT
        return None

    def refuse(self, copy: _Copy, reason: str, detail: str = "") -> None:
        """Give ``copy`` up (the download goes on) and count why."""
        copy.discard()
        with self._lock:
            self._count(copy.final.name, reason, detail or f"{copy.bytes} bytes copied")

    def forget(self, copy: _Copy) -> None:
        self._copies.discard(copy)

    def uploaded(self, size: int) -> None:
        """A copy of ``size`` bytes went to object storage and was deleted."""
        with self._lock:
            self._whole_bytes = max(0, self._whole_bytes - size)

    def _count(self, name: str, reason: str, detail: str) -> None:
        """Under the lock."""
        self.refused[reason] += 1
        if reason in self._said:
            return
        self._said.add(reason)
        limits = {SPOOL_FULL: f"offload.export_spool_max_mb: {(self.max_bytes or 0) / MIB:g} MiB",
                  DISK_SHORT: "the recording disk would fall below recording.min_free"}  # fmt: skip
        log.warning("offload: export %s not queued for upload: %s (%s), %s; the download goes on (said once a "
                    "reason until an export is kept again)", name, reason, limits.get(reason, "error"), detail)

    def _commit(self, copy: _Copy) -> None:
        with self._lock:
            if copy.failed:
                return
            name = copy.final.name
            try:
                copy.file.flush()
                os.fsync(copy.file.fileno())
                copy.file.close()
                if self.queue.knows(copy.final):
                    copy.discard()
                    return
                os.replace(copy.partial, copy.final)
                sync_dir(self.dir)
                self.queue.enqueue_file(copy.final, self.key_for(name), copy.bytes, copy.sha256.hexdigest())
            except (OSError, sqlite3.Error) as exc:
                # A whole copy that was renamed but not queued is queued by ``recover`` at the next start.
                copy.discard()
                self._count(name, WRITE_FAILED, str(exc))
                return
            self._copies.discard(copy)
            self._whole_bytes += copy.bytes
            self.kept += 1
            self._said.clear()
        log.info("offload: export %s queued for upload (%d bytes)", name, copy.bytes)
        self.wake()

    def recover(self) -> int:
        """At start (blocking): delete partial copies, queue whole ones a crash left unqueued, delete those
        uploaded whose deletion a crash missed. Returns how many were queued."""
        if not self.dir.is_dir():
            return 0
        queued = 0
        for path in sorted(self.dir.iterdir()):
            if path.name.endswith(PARTIAL):
                path.unlink(missing_ok=True)
            elif path.suffix == ".zip" and not self.queue.knows(path):
                self.queue.enqueue_file(path, self.key_for(path.name), path.stat().st_size, file_sha256(path))
                queued += 1
            elif path.suffix == ".zip" and self.queue.is_done(path):
                path.unlink(missing_ok=True)
        self._whole_bytes = _zip_bytes(self.dir)
        return queued


def _zip_bytes(directory: Path) -> int:
    """What the whole copies in ``directory`` hold (one the offloader deletes meanwhile holds nothing)."""
    total = 0
    for path in directory.glob("*.zip"):
        try:
            total += path.stat().st_size
        except FileNotFoundError:
            pass
    return total
