"""Exports made over HTTP, kept for object storage (edgeagent.offload.exports), without storage: the copy is
the zip the client got, queued once; a client that left or a copy that failed leaves nothing queued and the
download unharmed; a restart queues what a crash left unqueued; the copies are bounded (export_spool_max_mb,
and never below the recording's min_free, on a small tmpfs), and what was refused is counted by reason in
the offloader's stats, /metrics and agent health, and logged once. Uploads themselves:
tests/test_record_agent.py (the agent against SeaweedFS)."""

from __future__ import annotations

import errno
import hashlib
import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import ValidationError

from edgeagent.health import as_json
from edgeagent.offload.exports import ExportSpool, _Copy
from edgeagent.offload.queue import OffloadQueue
from edgeagent.offload.service import Offloader
from edgeagent.offload.settings import OffloadSection
from edgeagent.publish.offload_metrics import OffloadCollector
from edgeagent.record.clip import ClipPlan
from edgeagent.record.settings import RecordingSection
from edgeagent.recordings import AgentRecordings
from tests.support.disk import tmpfs
from tests.test_record_logic import segment
from tests.test_record_retention import MB, fill_to, free_bytes

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
            self.file.write = _raise_enospc  # type: ignore[method-assign,assignment]
        original(self, data)

    monkeypatch.setattr(_Copy, "write", full_disk)
    sink = Sink()
    assert keeper.wrap(NAME, export_job)(sink) == "done"
    assert bytes(sink.data) == b"".join(CHUNKS)
    assert list(keeper.dir.iterdir()) == [] and keeper.queue.pending() == (0, 0)
    assert keeper.refused == {"spool full": 0, "disk short": 0, "write failed": 1}


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


# -- the bound ------------------------------------------------------------------------------------------

MIB = 1 << 20
CHUNK = 256 * 1024  # as the clip cutter writes


class Watched(Sink):
    """A client's sink that also notes, at each write, whether a copy was being written beside it."""

    def __init__(self, spool_dir: Path) -> None:
        super().__init__()
        self.spool_dir = spool_dir
        self.copying = False

    def write(self, data: bytes) -> int:
        self.copying |= self.spool_dir.is_dir() and any(p.name.endswith(".partial") for p in self.spool_dir.iterdir())
        return super().write(data)


def export_of(size: int) -> Callable[[Sink], str]:
    def job(sink: Sink) -> str:
        for offset in range(0, size, CHUNK):
            sink.write(bytes([offset // CHUNK % 251]) * min(CHUNK, size - offset))
        return "done"

    return job


def name(number: int) -> str:
    return f"cabinet-17-north-20261201T08{number:02d}00.000000Z-20261201T08{number:02d}10.000000Z.zip"


def spool_on(directory: Path, queue: OffloadQueue, max_bytes: int | None = None, min_free: int = 0) -> ExportSpool:
    return ExportSpool(directory / ".offload-exports", queue, lambda n: f"p/a/exports/{n}", lambda: None,
                       max_bytes, lambda total: min_free)  # fmt: skip


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs as the recording disk (the queue's database stays on the real one)."""
    with tmpfs(tmp_path / "disk", "16m") as mount_point:
        yield mount_point


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[OffloadQueue]:
    made = OffloadQueue(tmp_path / "index.sqlite3")
    yield made
    made.close()


def refusals(caplog: pytest.LogCaptureFixture, reason: str) -> int:
    return sum(f": {reason} (" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_no_copy_takes_the_recording_disk_below_min_free_and_the_download_goes_on(
    small_disk: Path, queue: OffloadQueue, caplog: pytest.LogCaptureFixture
) -> None:
    spool = spool_on(small_disk, queue, min_free=8 * MB)
    fill_to(small_disk, 10 * MB)  # someone's video: 10 MB free, 8 of them the recording's to keep
    caplog.set_level(logging.WARNING, "edgeagent.offload.exports")
    sink = Watched(spool.dir)  # 3 MB of unknown size: begun, then given up before the disk falls below 8 MB
    assert spool.wrap(name(1), export_of(3 * MB))(sink) == "done"
    assert len(sink.data) == 3 * MB and sink.copying
    assert queue.pending() == (0, 0) and list(spool.dir.iterdir()) == [] and free_bytes(small_disk) > 9.9 * MB
    expected = Watched(spool.dir)  # the same, its size known: never begun
    assert spool.wrap(name(2), export_of(3 * MB), expected_bytes=3 * MB)(expected) == "done"
    assert len(expected.data) == 3 * MB and not expected.copying
    assert spool.refused == {"spool full": 0, "disk short": 2, "write failed": 0}
    assert refusals(caplog, "disk short") == 1  # said once
    small = Sink()
    assert spool.wrap(name(3), export_of(MB // 2), expected_bytes=MB // 2)(small) == "done"
    assert queue.pending() == (1, MB // 2) and spool.kept == 1 and spool.spooled_bytes() == MB // 2
    spool.wrap(name(4), export_of(3 * MB))(Sink())
    assert spool.refused["disk short"] == 3 and refusals(caplog, "disk short") == 2  # said again after a copy kept


def test_the_copies_together_hold_at_most_export_spool_max_mb(
    small_disk: Path, queue: OffloadQueue, caplog: pytest.LogCaptureFixture
) -> None:
    spool = spool_on(small_disk, queue, max_bytes=MIB)
    caplog.set_level(logging.WARNING, "edgeagent.offload.exports")
    spool.wrap(name(1), export_of(600_000))(Sink())
    assert queue.pending() == (1, 600_000)
    sink = Watched(spool.dir)  # 600 kB more would make 1.2 MB: given up once the bound is reached
    assert spool.wrap(name(2), export_of(600_000))(sink) == "done" and len(sink.data) == 600_000 and sink.copying
    big = Watched(spool.dir)  # known to be too big: not begun
    assert spool.wrap(name(3), export_of(2 * MIB), expected_bytes=2 * MIB)(big) == "done" and not big.copying
    assert spool.refused == {"spool full": 2, "disk short": 0, "write failed": 0}
    assert refusals(caplog, "spool full") == 1 and "export_spool_max_mb: 1 MiB" in caplog.text
    assert queue.pending() == (1, 600_000) and sorted(p.name for p in spool.dir.iterdir()) == [name(1)]
    item = queue.next_due()  # uploaded: its room is free again
    assert item is not None
    queue.done(item)
    item.path.unlink()
    spool.uploaded(item.bytes)
    assert spool.spooled_bytes() == 0
    spool.wrap(name(2), export_of(600_000), expected_bytes=600_000)(Sink())
    assert queue.pending() == (1, 600_000) and spool.kept == 2


def test_an_export_spool_of_zero_keeps_no_export_and_counts_none(tmp_path: Path, queue: OffloadQueue) -> None:
    spool = spool_on(tmp_path, queue, max_bytes=0)
    job = export_of(MIB)
    assert spool.wrap(name(1), job) is job
    assert queue.pending() == (0, 0) and spool.refused == {"spool full": 0, "disk short": 0, "write failed": 0}


def test_the_offloader_counts_exports_not_queued_in_its_stats_metrics_and_agent_health(tmp_path: Path) -> None:
    keys = tmp_path / "key"
    keys.write_text("k")
    section = OffloadSection(endpoint="http://127.0.0.1:9", bucket="cabinet", access_key_file=keys,
                             secret_key_file=keys, export_spool_max_mb=1)  # fmt: skip
    recording = RecordingSection(dir=tmp_path / "rec", min_free="0%")
    recording.dir.mkdir()
    offloader = Offloader(section, tmp_path / "rec" / "index.sqlite3", recording.dir, "cabinet-17",
                          recording.min_free_bytes)  # fmt: skip
    try:
        offloader.exports.wrap(name(1), export_of(2 * MIB))(Sink())
        stats = offloader.stats()
        assert stats.exports_not_queued == {"spool full": 1, "disk short": 0, "write failed": 0}
        assert stats.to_json()["exports_not_queued"]["spool full"] == 1 and stats.export_spool_bytes == 0
        registry = CollectorRegistry()
        registry.register(OffloadCollector(offloader.stats))
        text = generate_latest(registry).decode()
        assert 'edgeagent_offload_exports_not_queued_total{reason="spool full"} 1.0' in text
        assert 'edgeagent_offload_exports_not_queued_total{reason="disk short"} 0.0' in text
        assert "edgeagent_offload_export_spool_bytes 0.0" in text
        recordings = AgentRecordings(recording, "cabinet-17", None, section)
        recordings.offloader = offloader
        health = as_json(recordings.summary())
        assert health["exports_not_queued"] == {"spool full": 1, "disk short": 0, "write failed": 0}
    finally:
        offloader.queue.close()


@pytest.mark.parametrize("value", [-1, 1.5, "lots", 2**40])
def test_export_spool_max_mb_is_checked(tmp_path: Path, value: object) -> None:
    fields = {"endpoint": "http://127.0.0.1:9", "bucket": "cabinet", "access_key_file": tmp_path,
              "secret_key_file": tmp_path}  # fmt: skip
    with pytest.raises(ValidationError, match="export_spool_max_mb"):
        OffloadSection.model_validate({**fields, "export_spool_max_mb": value})
    assert OffloadSection.model_validate(fields).export_spool_max_mb == 1024


def test_an_exports_expected_size_is_its_share_of_each_segment() -> None:
    first, second = segment(0), segment(1)  # 10 s and 100 bytes each
    plan = ClipPlan("north", first.start, second.end, first.start + timedelta(seconds=5),
                    second.start + timedelta(seconds=2), (first, second))  # fmt: skip
    assert plan.expected_bytes() == 50 + 20
