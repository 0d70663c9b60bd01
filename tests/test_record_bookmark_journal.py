"""The bookmarks' journal (edgeagent.record.bookmarkjournal), without a camera: every bookmark the index
stores comes back, identical, after the database is lost; a torn last line or hostile lines cost those lines
only, with a warning; retention's pruning keeps the journal about the size of the bookmarks it left.
The same through a real recording: tests/test_record_camera.py (the deleted database)."""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edgeagent.record import commands
from edgeagent.record.bookmarkjournal import JOURNAL_NAME, MAX_LINE, bookmark_line, parse_line
from edgeagent.record.bookmarks import MAX_TEXT_CHARS, bounded_text
from edgeagent.record.index import RecordingIndex, to_us
from edgeagent.record.journal import MAX_WARNINGS, REWRITE_MIN_BYTES
from edgeagent.record.model import Bookmark, GapReason, Segment
from edgeagent.record.repair import reindex
from edgeagent.record.settings import RecordingSection

INDEX = "index.sqlite3"
T0 = datetime(2026, 12, 1, 8, 0, 0, tzinfo=UTC)
EVER = (datetime(1971, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))
MARKS = [Bookmark("north", T0 + timedelta(seconds=3, microseconds=7), "motion", "onvif", "ONVIF motion: tns1:Motion"),
         Bookmark("north", T0 + timedelta(seconds=8), "blank", "picture", "picture blank"),
         Bookmark("south", T0 + timedelta(seconds=4), "tamper", "onvif", bounded_text("ünï😀 \"q\" " * 40)),
         Bookmark("north", T0 + timedelta(seconds=20), "moved", "picture", "camera view moved")]  # fmt: skip


def stored(index: RecordingIndex) -> list[Bookmark]:
    return [mark for camera in ("north", "south") for mark in index.bookmarks(camera, *EVER)]


def reindexed(root: Path) -> tuple[RecordingIndex, int]:
    for path in root.glob(INDEX + "*"):
        path.unlink()
    index = RecordingIndex(root / INDEX)
    assert stored(index) == []
    return index, reindex(index, root).bookmarks


def test_a_line_gives_back_the_bookmark_it_was_made_of_within_its_bound() -> None:
    for mark in MARKS:
        row = (mark.camera, to_us(mark.at), mark.kind, mark.source, mark.text)
        line = bookmark_line(row)
        assert line.endswith(b"\n") and len(line) <= MAX_LINE and parse_line(line[:-1]) == row
    worst = bookmark_line(("n" * 63, 2**62, "scenechange", "onvif", "😀" * MAX_TEXT_CHARS))  # 12 bytes a char
    assert len(worst) <= MAX_LINE


def test_every_bookmark_comes_back_identical_after_the_database_is_lost(tmp_path: Path) -> None:
    index = RecordingIndex(tmp_path / INDEX)
    index.add_bookmarks(MARKS[:2])
    index.add_bookmarks(MARKS[2:])
    before = stored(index)
    assert len(before) == len(MARKS)
    index.close()
    rebuilt, restored = reindexed(tmp_path)
    assert stored(rebuilt) == before and restored == len(MARKS)
    assert reindex(rebuilt, tmp_path).bookmarks == 0 and stored(rebuilt) == before  # again: once each


HOSTILE = [
    b"x" * (MAX_LINE + 1),
    b"\xff\xfe not utf-8",
    b"[1]",
    b'{"camera": "north", "at_us": 1, "kind": "motion", "source": "onvif"}',
    b'{"camera": "../etc", "at_us": 1, "kind": "motion", "source": "onvif", "text": "x"}',
    b'{"camera": "north", "at_us": -1, "kind": "motion", "source": "onvif", "text": "x"}',
    b'{"camera": "north", "at_us": 1, "kind": "gremlins", "source": "onvif", "text": "x"}',
    b'{"camera": "north", "at_us": 1, "kind": "blank", "source": "onvif", "text": "x"}',  # a picture kind
    b'{"camera": "north", "at_us": 1, "kind": "motion", "source": ["onvif"], "text": "x"}',
    b'{"camera": "north", "at_us": 1, "kind": "motion", "source": "onvif", "text": "' + b"y" * 161 + b'"}',
    b'{"camera": "north", "at_us": 1, "kind": "motion", "source": "onvif", "text": "bell\\u0007"}',
    b'{"camera": "north", "at_us": 1, "kind": "motion", "source": "onvif", "text": 5}',
]


def test_hostile_lines_and_a_torn_last_line_cost_those_lines_only(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    index = RecordingIndex(tmp_path / INDEX)
    index.add_bookmarks(MARKS[:1])
    index.close()
    journal = tmp_path / JOURNAL_NAME
    good = journal.read_bytes()
    later = bookmark_line(("north", to_us(MARKS[1].at), "blank", "picture", "picture blank"))
    journal.write_bytes(b"\n".join(HOSTILE) + b"\n" + good + later + b'{"camera": "north", "at_')  # torn
    caplog.set_level(logging.INFO, "edgeagent.record.journal")
    rebuilt, restored = reindexed(tmp_path)
    assert stored(rebuilt) == MARKS[:2] and restored == 2
    named = [r.getMessage() for r in caplog.records if "; ignored" in r.getMessage() and "torn" not in r.getMessage()]
    assert len(named) == MAX_WARNINGS and f"{len(HOSTILE) - MAX_WARNINGS} more lines ignored" in caplog.text
    assert f"line 1: longer than {MAX_LINE} bytes" in named[0] and "line 7: an unknown kind" in named[6]
    assert "ends in a torn line" in caplog.text
    rebuilt.add_bookmarks(MARKS[2:3])  # after the torn line: a line of its own
    rebuilt.close()
    assert stored(reindexed(tmp_path)[0]) == [MARKS[0], MARKS[1], MARKS[2]]


def test_retention_keeps_the_journal_about_the_size_of_the_bookmarks_it_left(tmp_path: Path) -> None:
    index = RecordingIndex(tmp_path / INDEX)
    journal = tmp_path / JOURNAL_NAME
    for batch in range(8):  # a busy camera for a long time
        index.add_bookmarks([Bookmark("north", T0 + timedelta(seconds=10 * (100 * batch + i)), "motion", "onvif",
                                      f"ONVIF motion: {i}") for i in range(100)])  # fmt: skip
    grown = journal.stat().st_size
    assert grown > REWRITE_MIN_BYTES
    kept = T0 + timedelta(seconds=10 * 795)  # retention kept the video from here on: five bookmarks with it
    index.close_segment(Segment("north", tmp_path / "n.mp4", kept, kept + timedelta(hours=1), 1, "h264", 320, 180,
                                "ab", None))  # fmt: skip
    assert index.delete_bookmarks_before_video(T0) == 795
    left = stored(index)
    assert len(left) == 5 and journal.stat().st_size < REWRITE_MIN_BYTES < grown
    index.close()
    assert stored(reindexed(tmp_path)[0]) == left


def test_recordings_reindex_says_how_many_gaps_and_bookmarks_it_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    index = RecordingIndex(tmp_path / INDEX)
    index.add_bookmarks(MARKS)
    index.add_gap("north", T0, T0 + timedelta(seconds=1), GapReason.STALL)
    index.close()
    for path in tmp_path.glob(INDEX + "*"):
        path.unlink()
    monkeypatch.setattr(commands, "_settings", lambda args: RecordingSection(dir=tmp_path))
    assert commands.cmd_reindex(argparse.Namespace(config="unused.yaml")) == 0
    assert capsys.readouterr().out == (f"ok: 0 segments of 0 cameras indexed from {tmp_path}; 1 gaps and "
                                       f"{len(MARKS)} bookmarks restored from their journals\n")  # fmt: skip
