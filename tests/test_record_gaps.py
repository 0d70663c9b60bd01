"""The gaps' journal (edgeagent.record.gapjournal), without a camera: every gap the index records, with its
reason, comes back after the database is lost; a torn, corrupt or hostile journal costs its bad lines only,
with a warning, never the reindex; a full disk and retention keep it whole and small.
The same through a real recording: tests/test_record_camera.py (the deleted database)."""

from __future__ import annotations

import errno
import json
import logging
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from edgeagent.record import journal as journals
from edgeagent.record.gapjournal import JOURNAL_NAME
from edgeagent.record.index import RecordingIndex, to_us
from edgeagent.record.journal import MAX_WARNINGS, REWRITE_MIN_BYTES
from edgeagent.record.model import GapReason
from edgeagent.record.repair import reindex
from tests.test_record_logic import T0

INDEX = "index.sqlite3"


def raw_gaps(index: RecordingIndex) -> list[tuple[str, int, int | None, str]]:
    """Every gap as stored (an open one without its end), oldest first."""
    return sorted(index._gap_rows(), key=lambda row: (row[0], row[1]))


def lose_database(root: Path) -> RecordingIndex:
    for path in root.glob(INDEX + "*"):
        path.unlink()
    return RecordingIndex(root / INDEX)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def record_gaps(index: RecordingIndex) -> None:
    """What recorders and repair leave: gaps opened and closed, two cameras, one still open."""
    index.add_gap("north", at(10), None, GapReason.CAMERA_OFFLINE)
    index.close_gaps("north", at(25))
    index.add_gap("south", at(12), None, GapReason.DISK_FULL)
    index.add_gap("north", at(40), None, GapReason.AGENT_CRASHED)
    index.close_gaps("north", at(41.5))
    index.close_gaps("south", at(30))
    index.add_gap("north", at(60), at(61), GapReason.TIMESTAMP_JUMP)
    index.add_gap("north", at(90), None, GapReason.AGENT_STOPPED)


def test_every_gap_and_its_reason_come_back_after_the_database_is_lost(tmp_path: Path) -> None:
    index = RecordingIndex(tmp_path / INDEX)
    record_gaps(index)
    before = raw_gaps(index)
    assert [row[3] for row in before if row[0] == "north"] == ["camera offline", "agent crashed", "timestamp jump",
                                                               "agent stopped"]  # fmt: skip
    index.close()
    rebuilt = lose_database(tmp_path)
    assert raw_gaps(rebuilt) == []
    reindex(rebuilt, tmp_path)
    assert raw_gaps(rebuilt) == before
    assert rebuilt.has_open_gap("north") and not rebuilt.has_open_gap("south")  # the stop still goes on
    reindex(rebuilt, tmp_path)  # again, on a whole database: the same gaps, once each
    assert raw_gaps(rebuilt) == before
    rebuilt.close_gaps("north", at(100))  # recording resumed after the rebuild
    rebuilt.close()
    north = [row for row in raw_gaps(reindexed(tmp_path)) if row[0] == "north"]
    assert north[-1] == ("north", to_us(at(90)), to_us(at(100)), "agent stopped")


def reindexed(root: Path) -> RecordingIndex:
    index = lose_database(root)
    reindex(index, root)
    return index


def test_an_index_from_before_journals_writes_its_gaps_into_a_new_one(tmp_path: Path) -> None:
    index = RecordingIndex(tmp_path / INDEX)
    record_gaps(index)
    before = raw_gaps(index)
    index.close()
    (tmp_path / JOURNAL_NAME).unlink()
    RecordingIndex(tmp_path / INDEX).close()  # opening it is enough
    assert raw_gaps(reindexed(tmp_path)) == before


def test_a_torn_last_line_is_ignored_and_the_next_gap_starts_a_line_of_its_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    index = RecordingIndex(tmp_path / INDEX)
    record_gaps(index)
    before = raw_gaps(index)
    index.close()
    with open(tmp_path / JOURNAL_NAME, "ab") as file:
        file.write(b'{"camera":"north","start_us":1')  # a crash mid-append
    caplog.set_level(logging.INFO, "edgeagent.record.journal")
    index = reindexed(tmp_path)
    assert raw_gaps(index) == before
    assert "torn line" in caplog.text and "WARNING" not in caplog.text
    index.add_gap("east", at(200), at(201), GapReason.STALL)
    index.close()
    caplog.clear()
    index = reindexed(tmp_path)
    assert raw_gaps(index) == sorted([*before, ("east", to_us(at(200)), to_us(at(201)), "stall")])
    assert "line 9: not a JSON line" in caplog.text  # the torn piece, now a line of its own
    index.close()


HOSTILE = [
    b"garbage " * 100_000,  # 800 kB without a newline in the middle
    b'{"camera": "north", "start_us": 1, "end_us": null, "reason": "' + b"x" * 600 + b'"}',
    b"\xff\xfe not utf-8",
    b"[1, 2, 3]",
    b"null",
    b'{"camera": "north"}',
    b'{"camera": "../../etc", "start_us": 1, "end_us": null, "reason": "stall"}',
    b'{"camera": "north", "start_us": true, "end_us": null, "reason": "stall"}',
    b'{"camera": "north", "start_us": 1.5, "end_us": null, "reason": "stall"}',
    b'{"camera": "north", "start_us": -5, "end_us": null, "reason": "stall"}',
    b'{"camera": "north", "start_us": 99999999999999999999999, "end_us": null, "reason": "stall"}',
    b'{"camera": "north", "start_us": 50, "end_us": 10, "reason": "stall"}',
    b'{"camera": "north", "start_us": 1, "end_us": null, "reason": "gremlins"}',
    b'{"camera": "north", "start_us": 1, "end_us": null, "reason": "stall", "extra": 1}',
    b'{"camera": "north", "close_us": "soon"}',
    b"[" * 500 + b"]" * 12,
    b"\x00" * 300,
]

def test_a_hostile_journal_costs_its_bad_lines_only_with_a_warning(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    index = RecordingIndex(tmp_path / INDEX)
    index.add_gap("north", at(10), at(20), GapReason.CAMERA_OFFLINE)
    index.close()
    journal = tmp_path / JOURNAL_NAME
    good = journal.read_bytes()
    later = json.dumps({"camera": "north", "start_us": to_us(at(30)), "end_us": None, "reason": "disk full"})
    journal.write_bytes(b"\n".join([*HOSTILE[:8], good.rstrip(b"\n"), *HOSTILE[8:], later.encode(),
                                    b'{"camera": "north", "close_us": %d}' % to_us(at(35)), b""]))
    caplog.set_level(logging.WARNING, "edgeagent.record.journal")
    rebuilt = reindexed(tmp_path)
    assert raw_gaps(rebuilt) == [("north", to_us(at(10)), to_us(at(20)), "camera offline"),
                                 ("north", to_us(at(30)), to_us(at(35)), "disk full")]
    named = [r.getMessage() for r in caplog.records if "; ignored" in r.getMessage()]
    assert len(named) == MAX_WARNINGS and f"{len(HOSTILE) - MAX_WARNINGS} more lines ignored" in caplog.text
    assert "line 1: longer than 512 bytes" in named[0] and "line 2: longer than 512 bytes" in named[1]
    assert "line 3: not a JSON line" in named[2] and "line 7: no valid camera name" in named[6]


def test_an_unreadable_journal_leaves_the_reindex_without_reasons_not_broken(tmp_path: Path,
                                                                            caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / JOURNAL_NAME).mkdir()  # not a file at all
    index = RecordingIndex(tmp_path / INDEX)
    caplog.set_level(logging.WARNING, "edgeagent.record.journal")
    assert reindex(index, tmp_path).segments == 0 and raw_gaps(index) == []
    assert "cannot be read" in caplog.text
    index.add_gap("north", at(1), None, GapReason.STALL)  # the index goes on
    assert index.has_open_gap("north")


def test_a_gap_the_journal_missed_on_a_full_disk_is_in_it_after_the_next_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    index = RecordingIndex(tmp_path / INDEX)
    real = journals._append_line
    full = {"disk": True}

    def append(path: Path, line: bytes) -> None:
        if full["disk"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, line)

    monkeypatch.setattr(journals, "_append_line", append)
    caplog.set_level(logging.WARNING, "edgeagent.record.journal")
    index.add_gap("north", at(10), None, GapReason.DISK_FULL)
    index.close_gaps("north", at(20))
    assert caplog.text.count("not written") == 1  # once, not at every gap
    full["disk"] = False
    index.add_gap("north", at(30), None, GapReason.CAMERA_OFFLINE)
    before = raw_gaps(index)
    index.close()
    assert raw_gaps(reindexed(tmp_path)) == before
    assert [row[3] for row in before] == ["disk full", "camera offline"]


def test_retention_keeps_the_journal_about_the_size_of_the_gaps_it_left(tmp_path: Path) -> None:
    index = RecordingIndex(tmp_path / INDEX)
    journal = tmp_path / JOURNAL_NAME
    for i in range(600):  # a camera that flapped for a long time
        index.add_gap("north", at(10 * i), None, GapReason.CAMERA_OFFLINE)
        index.close_gaps("north", at(10 * i + 5))
    grown = journal.stat().st_size
    assert grown > REWRITE_MIN_BYTES
    index.delete_gaps_before(at(10 * 590))  # retention dropped all but ten
    left = raw_gaps(index)
    assert len(left) == 10 and journal.stat().st_size < REWRITE_MIN_BYTES < grown
    index.add_gap("north", at(30000), None, GapReason.AGENT_STOPPED)
    left = raw_gaps(index)
    index.close()
    assert raw_gaps(reindexed(tmp_path)) == left
