"""Exports made over HTTP, kept for object storage (edgeagent.offload.exports), without storage: the copy is
the zip the client got, queued once; a client that left or a copy that failed leaves nothing queued and the
download unharmed; a restart queues what a crash left unqueued. Uploads themselves: tests/test_record_agent.py
(the agent against SeaweedFS)."""

from __future__ import annotations

import errno
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeagent.offload.exports import ExportSpool, _Copy
from edgeagent.offload.queue import OffloadQueue

NAME = "cabinet-17-north-20261201T080000.000000Z-20261201T080010.000000Z.zip"
CHUNKS = [b"PK\x03\x04" + bytes(1000), bytes(range(256)) * 40, b"PK\x05\x06end"]


class Sink:
    def __init__(self, fail_at: int | None = None) -> None:
        self.data = bytearray()
        self.fail_at = fail_at

    def write(self, data: bytes) -> int:
        if self.fail_at is not None and len(self.data) >= self.fail_at:
            raise ConnectionResetError("the client left")
        self.data += data
        return len(data)


def export_job(sink: Sink) -> str:
    for chunk in CHUNKS:
        sink.write(chunk)
    return "done"


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[tuple[ExportSpool, list[str]]]:
    queue = OffloadQueue(tmp_path / "index.sqlite3")
    woken: list[str] = []
    yield ExportSpool(tmp_path / ".offload-exports", queue, lambda name: f"p/a/exports/{name}",
                      lambda: woken.append("wake")), woken  # fmt: skip
    queue.close()


def test_an_export_is_copied_as_the_client_got_it_and_queued_once(spool: tuple[ExportSpool, list[str]]) -> None:
    keeper, woken = spool
    sink = Sink()
    assert keeper.wrap(NAME, export_job)(sink) == "done"
    kept = keeper.dir / NAME
    assert kept.read_bytes() == bytes(sink.data) == b"".join(CHUNKS)
    item = keeper.queue.next_due()
    assert item is not None and (item.path, item.kind, item.key) == (kept, "export", f"p/a/exports/{NAME}")
    assert (item.bytes, item.sha256) == (len(sink.data), hashlib.sha256(sink.data).hexdigest())
    assert woken == ["wake"] and keeper.owns(kept)
    again = Sink()
    keeper.wrap(NAME, export_job)(again)  # the same video once more: the client gets it, nothing is kept
    assert bytes(again.data) == bytes(sink.data) and keeper.queue.pending() == (1, len(sink.data))
    assert sorted(p.name for p in keeper.dir.iterdir()) == [NAME] and keeper.kept == 1


def test_a_client_that_leaves_midway_leaves_no_copy(spool: tuple[ExportSpool, list[str]]) -> None:
    keeper, woken = spool
    with pytest.raises(ConnectionResetError):
        keeper.wrap(NAME, export_job)(Sink(fail_at=2000))
    assert list(keeper.dir.iterdir()) == [] and keeper.queue.pending() == (0, 0) and woken == []


def test_a_copy_that_cannot_be_written_leaves_the_download_whole(spool: tuple[ExportSpool, list[str]],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    keeper, _ = spool
    original = _Copy.write

    def full_disk(self: _Copy, data: bytes) -> None:
        if self.bytes > 0:
            self.file.write = _raise_enospc  # type: ignore[method-assign]
        original(self, data)

    monkeypatch.setattr(_Copy, "write", full_disk)
    sink = Sink()
    assert keeper.wrap(NAME, export_job)(sink) == "done"
    assert bytes(sink.data) == b"".join(CHUNKS)
    assert list(keeper.dir.iterdir()) == [] and keeper.queue.pending() == (0, 0)


def _raise_enospc(data: bytes) -> int:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_restart_queues_whole_copies_a_crash_left_and_deletes_partial_ones(
    spool: tuple[ExportSpool, list[str]]
) -> None:
    keeper, _ = spool
    keeper.dir.mkdir()
    whole = keeper.dir / NAME
    whole.write_bytes(b"a whole export")
    partial = keeper.dir / (NAME + ".0123456789ab.partial")
    partial.write_bytes(b"half")
    uploaded = keeper.dir / "uploaded.zip"
    uploaded.write_bytes(b"already in storage")
    keeper.queue.enqueue_file(uploaded, "k", 18, hashlib.sha256(b"already in storage").hexdigest())
    item = keeper.queue.next_due()
    assert item is not None
    keeper.queue.done(item)
    assert keeper.recover() == 1
    assert sorted(p.name for p in keeper.dir.iterdir()) == [NAME]
    item = keeper.queue.next_due()
    assert item is not None and item.path == whole and item.sha256 == hashlib.sha256(b"a whole export").hexdigest()
    assert keeper.recover() == 0  # queued once
