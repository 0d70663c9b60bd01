"""Exports made over HTTP, kept for object storage: a copy is written while the zip streams to the client,
queued in the offload queue (the recording index, so it survives restarts) and deleted once uploaded and
verified.

The copy is written in the worker thread that cuts the export, into a ``.partial`` file of its own; once
the zip is whole it is fsync-ed, renamed and queued. A client that leaves mid-way leaves no copy (no
export was made). A copy that cannot be written (a full disk) is given up with a warning: the client's
download goes on. The same video (camera and actual range, which make the name) is kept and uploaded
once. At start, a whole copy that a crash left unqueued is queued, partial ones are deleted.
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
from edgeagent.record.writer import file_sha256

log = logging.getLogger(__name__)

SPOOL_DIR = ".offload-exports"  # under recording.dir: a camera's name cannot begin with a dot
PARTIAL = ".partial"


class _Copy:
    """One export being copied; ``failed`` once a write did not go through (the copy is then dropped)."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.partial = final.with_name(f"{final.name}.{uuid.uuid4().hex[:12]}{PARTIAL}")
        self.file = open(self.partial, "xb")  # noqa: SIM115 (closed by commit or discard)
        self.sha256 = hashlib.sha256()
        self.bytes = 0
        self.failed = False

    def write(self, data: bytes) -> None:
        if self.failed:
            return
        try:
            self.file.write(data)
        except OSError as exc:
            log.warning("offload: the copy of export %s for upload failed (%s); the download goes on",
                        self.final.name, exc)  # fmt: skip
            self.discard()
            return
        self.sha256.update(data)
        self.bytes += len(data)

    def discard(self) -> None:
        self.failed = True
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
    def __init__(self, directory: Path, queue: OffloadQueue, key_for: Callable[[str], str],
                 wake: Callable[[], None]) -> None:  # fmt: skip
        self.dir = directory
        self.queue = queue
        self.key_for = key_for  # the object key of an export's name
        self.wake = wake  # tells the offloader there is work (from any thread)
        self.kept = 0
        self._lock = threading.Lock()  # one commit at a time: two equal exports at once are kept once

    def owns(self, path: Path) -> bool:
        return path.parent == self.dir

    def wrap(self, name: str, job: Callable[[Any], object]) -> Callable[[Any], object]:
        """``job(sink)`` (an export written into ``sink``), also copied and queued under ``name``."""

        def run(sink: Any) -> object:
            copy = self._begin(name)
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

    def _begin(self, name: str) -> _Copy | None:
        final = self.dir / name
        try:
            if self.queue.knows(final):
                log.info("offload: export %s is queued already; not kept again", name)
                return None
            self.dir.mkdir(parents=True, exist_ok=True)
            return _Copy(final)
        except (OSError, sqlite3.Error) as exc:
            log.warning("offload: export %s cannot be kept for upload: %s", name, exc)
            return None

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
                _sync_dir(self.dir)
                self.queue.enqueue_file(copy.final, self.key_for(name), copy.bytes, copy.sha256.hexdigest())
            except (OSError, sqlite3.Error) as exc:
                # A whole copy that was renamed but not queued is queued by ``recover`` at the next start.
                log.warning("offload: export %s not queued for upload: %s", name, exc)
                copy.discard()
                return
            self.kept += 1
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
        return queued


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
