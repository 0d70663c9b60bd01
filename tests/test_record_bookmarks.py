"""Bookmarks as pure logic and on a real SQLite file: what an ONVIF event or a picture alarm becomes, the
coalescing that holds a hostile device's flood to one mark per camera and kind every 10 s, bounded text and
times, the schema migration of an existing index, the bounded query, and retention of bookmarks."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edgeagent.onvif import events
from edgeagent.record import bookmarks as marks
from edgeagent.record.bookmarks import Bookmarker, Coalescer, bounded_text, event_time, onvif_bookmark
from edgeagent.record.index import RecordingIndex
from edgeagent.record.model import Bookmark, Segment
from edgeagent.record.retention import Retention
from edgeagent.record.schema import OFFLOAD_SCHEMA, SCHEMA, SCHEMA_VERSION
from edgeagent.record.settings import RecordingSection
from tests.support.clock import ManualClock

NOW = datetime(2026, 12, 1, 8, 0, 0, tzinfo=UTC)
MOTION = "tns1:RuleEngine/CellMotionDetector/Motion"
TAMPER = "tns1:RuleEngine/TamperDetector/Tamper"


def test_the_kinds_are_those_the_event_puller_passes_on() -> None:
    assert marks.ONVIF_KINDS == events.KINDS


def test_one_bookmark_per_camera_and_kind_every_ten_seconds_while_it_stays_active() -> None:
    clock = ManualClock()
    coalescer = Coalescer(clock=clock)
    assert coalescer.allow("north", "motion")
    assert [coalescer.allow("north", "motion") for _ in range(10_000)] == [False] * 10_000  # a flood: coalesced
    assert coalescer.allow("north", "tamper") and coalescer.allow("south", "motion")  # other kind, other camera
    clock.now += 9.875
    assert not coalescer.allow("north", "motion")
    clock.now += 0.125  # 10 s after the last bookmark made (not after the last event): the next one
    assert coalescer.allow("north", "motion")
    made = 0
    for _ in range(640):  # 80 s of an event repeated every 0.125 s: eight bookmarks, one per 10 s
        clock.now += 0.125
        made += coalescer.allow("north", "motion")
    assert made == 8
    assert coalescer.coalesced == 10_000 + 1 + 632
    assert coalescer.allow("south", "motion") and not coalescer.allow("north", "motion")
    coalescer.forget("north")  # removed by a reload: its window goes with it, south's stays
    assert coalescer.allow("north", "motion") and not coalescer.allow("south", "motion")


def test_text_is_bounded_printable_and_never_repeats_the_password() -> None:
    assert bounded_text("x" * 10_000) == "x" * (marks.MAX_TEXT_CHARS - 1) + "…"
    assert bounded_text("a\nb\x00c\u202ed") == "a?b?c?d"
    assert bounded_text("tns1:Motion/<script>", allowed=marks.TOPIC_CHARS) == "tns1:Motion/?script?"
    secret = "s3cr3t-pass"
    for text in (f"echo {secret} back", f"{secret}{secret}", secret):
        assert secret not in bounded_text(text, [secret])
    # A character replaced by "?" must not make a secret that was not there whole before.
    assert bounded_text("pa\x00ss", ["pa?ss"]) == "***"
    # Cut after masking: no beginning of the secret is left at the cut.
    cut = bounded_text("y" * (marks.MAX_TEXT_CHARS - 4) + secret, [secret])
    assert "s3c" not in cut and len(cut) <= marks.MAX_TEXT_CHARS


def test_an_event_time_is_the_cameras_own_only_when_plausible() -> None:
    received = NOW
    assert event_time("2026-12-01T07:59:50Z", received, None) == NOW - timedelta(seconds=10)
    # A camera 10 minutes ahead: its stamp taken back to our clock.
    assert event_time("2026-12-01T08:09:58.5Z", received, 600.0) == NOW - timedelta(seconds=1.5)
    for stamp in ("2026-12-01T08:09:58Z",  # the same stamp without the offset: 10 minutes in the future
                  "2026-12-01T07:00:00Z", "1999-01-01T00:00:00Z", "2026-12-01T08:00:00", "yesterday", "",
                  "9" * 10_000, None, 42, ["2026-12-01T08:00:00Z"]):  # fmt: skip
        assert event_time(stamp, received, None) == received, stamp


def test_what_an_onvif_event_becomes() -> None:
    bookmark = onvif_bookmark("north", {"time": "2026-12-01T07:59:59Z", "topic": MOTION, "state": True}, NOW)
    assert bookmark == Bookmark("north", NOW - timedelta(seconds=1), "motion", "onvif", f"ONVIF motion: {MOTION}")
    tamper = onvif_bookmark("north", {"time": None, "topic": TAMPER,
                                      "state": "active"}, NOW)  # fmt: skip
    assert tamper is not None and (tamper.kind, tamper.at) == ("tamper", NOW)
    scene = onvif_bookmark("north", {"topic": "tns1:VideoSource/GlobalSceneChange/ImagingService"}, NOW)
    assert scene is not None and scene.kind == "scenechange"  # no state item: something happened
    for event in ({"topic": MOTION, "state": False}, {"topic": MOTION, "state": "false"},
                  {"topic": "tns1:Device/Trigger/Relay", "state": True}, {"topic": 5, "state": True}, {}):
        assert onvif_bookmark("north", event, NOW) is None, event
    hostile = onvif_bookmark("north", {"topic": "tns1:Motion/" + "\u0000<&>" * 5000 + "pw-of-north",
                                       "state": True}, NOW, secrets=["pw-of-north"])  # fmt: skip
    assert hostile is not None and len(hostile.text) <= marks.MAX_TEXT_CHARS
    assert hostile.text.isprintable() and "<" not in hostile.text
    echoed = onvif_bookmark("north", {"topic": "tns1:Motion/pw-of-north", "state": True}, NOW, secrets=["pw-of-north"])
    assert echoed is not None and "pw-of-north" not in echoed.text and "***" in echoed.text


async def test_a_flood_from_a_hostile_device_is_one_bookmark_per_kind() -> None:
    stored: list[list[Bookmark]] = []
    clock = ManualClock()
    bookmarker = Bookmarker(stored.append, clock=clock, now=lambda: NOW)
    kept = [bookmarker.onvif_event("north", {"time": "garbage", "topic": MOTION + str(i), "state": True})
            for i in range(5000)]  # fmt: skip
    kept += [bookmarker.onvif_event("north", {"topic": TAMPER, "state": True})
             for _ in range(5000)]  # fmt: skip
    assert sum(kept) == 2
    await bookmarker.close()
    assert [(b.kind, b.at) for batch in stored for b in batch] == [("motion", NOW), ("tamper", NOW)]
    assert bookmarker.stored == 2 and bookmarker.coalescer.coalesced == 9998
    clock.now += marks.COALESCE_S  # still active after 10 s: one more
    assert bookmarker.onvif_event("north", {"topic": MOTION, "state": True})
    await bookmarker.close()
    assert bookmarker.stored == 3


async def test_a_store_that_fails_or_stalls_loses_bookmarks_counted_and_holds_at_most_256() -> None:
    def broken(batch: list[Bookmark]) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    bookmarker = Bookmarker(broken, clock=ManualClock(), now=lambda: NOW)
    assert bookmarker.onvif_event("north", {"topic": MOTION, "state": True})
    await bookmarker.close()
    assert (bookmarker.stored, bookmarker.dropped) == (0, 1)

    released = threading.Event()
    batches: list[int] = []

    def stalled(batch: list[Bookmark]) -> None:  # a disk that does not answer for a while
        released.wait(10)
        batches.append(len(batch))

    bookmarker = Bookmarker(stalled, clock=ManualClock(), now=lambda: NOW)
    kept = [bookmarker.onvif_event(f"cam{i}", {"topic": MOTION, "state": True}) for i in range(300)]
    await asyncio.sleep(0.05)  # the first batch is in the thread, stuck
    try:
        kept += [bookmarker.onvif_event(f"cam{i}", {"topic": TAMPER, "state": True}) for i in range(300)]
        assert sum(kept) == 2 * marks.MAX_PENDING and bookmarker.dropped == 2 * (300 - marks.MAX_PENDING)
    finally:
        released.set()
    await bookmarker.close()
    assert batches == [marks.MAX_PENDING] * 2 and bookmarker.stored == 2 * marks.MAX_PENDING


async def test_a_picture_alarm_is_a_bookmark_when_it_is_raised() -> None:
    stored: list[Bookmark] = []
    clock = ManualClock()
    bookmarker = Bookmarker(stored.extend, clock=clock, now=lambda: NOW)
    raised = {"active": ["offline", "blank"], "since": {"offline": "2026-12-01T07:00:00Z",
                                                        "blank": "2026-12-01T07:59:58Z"}}  # fmt: skip
    assert bookmarker.picture_alarms("road", raised) == 1
    assert bookmarker.picture_alarms("road", raised) == 0  # the same alarm, still raised
    both = {"active": ["blank", "moved", "clock"], "since": {"blank": "2026-12-01T07:59:58Z",
                                                             "moved": "2026-12-01T07:59:59Z", "clock": "x"}}
    assert bookmarker.picture_alarms("road", both) == 1  # only "moved" is new; clock and offline are no marks
    assert bookmarker.picture_alarms("road", {"active": [], "since": {}}) == 0
    again = {"active": ["blank"], "since": {"blank": "2026-12-01T08:00:03Z"}}
    assert bookmarker.picture_alarms("road", again) == 0  # raised again within 10 s: coalesced
    clock.now += marks.COALESCE_S
    assert bookmarker.picture_alarms("road", {"active": [], "since": {}}) == 0
    assert bookmarker.picture_alarms("road", {"active": ["blank"], "since": {"blank": "2026-12-01T08:00:13Z"}}) == 1
    assert bookmarker.picture_alarms("road", {"since": "not a mapping"}) == 0
    await bookmarker.close()
    assert [(b.kind, b.source, b.text, b.at.second) for b in stored] == [
        ("blank", "picture", "picture blank", 58), ("moved", "picture", "camera view moved", 59),
        ("blank", "picture", "picture blank", 13)]  # fmt: skip


def _old_database(path: Path) -> None:
    """An index as agents before bookmarks left it: version 0, a segment and a lock in it."""
    db = sqlite3.connect(path)
    db.executescript(SCHEMA + OFFLOAD_SCHEMA)
    db.execute("INSERT INTO segments (camera, path, start_us, end_us, bytes, codec, width, height, sha256, open) "
               "VALUES ('north', '/r/north/a.mp4', 1, 2, 3, 'h264', 320, 180, 'ab', 0)")
    db.execute("INSERT INTO locks VALUES ('l1', 'north', 1, 2, 'incident', 1)")
    db.commit()
    db.close()


def test_an_existing_index_is_migrated_and_keeps_every_row(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite3"
    _old_database(path)
    index = RecordingIndex(path)
    try:
        assert [s.path.name for s in index.all_segments()] == ["a.mp4"] and index.locks()[0].reason == "incident"
        assert index._query("PRAGMA user_version")[0][0] == SCHEMA_VERSION == 2
        index.add_bookmarks([Bookmark("north", NOW, "motion", "onvif", "ONVIF motion: x")])
        assert index.bookmarks("north", NOW, NOW + timedelta(seconds=1))[0].text == "ONVIF motion: x"
    finally:
        index.close()
    again = RecordingIndex(path)  # opened again (and by the CLI beside the agent): nothing changes
    try:
        assert len(again.bookmarks("north", NOW - timedelta(days=1), NOW + timedelta(days=1))) == 1
    finally:
        again.close()
    newer = tmp_path / "newer.sqlite3"
    _old_database(newer)
    db = sqlite3.connect(newer)
    db.execute("PRAGMA user_version = 7")  # a database a later agent left: opened, never "downgraded"
    db.close()
    index = RecordingIndex(newer)
    try:
        assert index._query("PRAGMA user_version")[0][0] == 7
        assert index.bookmarks("north", NOW, NOW + timedelta(seconds=1)) == []
    finally:
        index.close()


def test_the_query_is_a_half_open_range_oldest_first_and_bounded(tmp_path: Path) -> None:
    index = RecordingIndex(tmp_path / "index.sqlite3")
    try:
        many = [Bookmark("north", NOW + timedelta(milliseconds=i), "motion", "onvif", f"m{i}") for i in range(1500)]
        index.add_bookmarks(list(reversed(many)) + [Bookmark("south", NOW, "blank", "picture", "picture blank")])
        found = index.bookmarks("north", NOW, NOW + timedelta(hours=1))
        assert len(found) == 1000 and found[0].text == "m0" and found[-1].text == "m999"
        assert len(index.bookmarks("north", NOW, NOW + timedelta(hours=1), limit=10**9)) == 1500
        assert [b.text for b in index.bookmarks("north", NOW + timedelta(milliseconds=5),
                                                NOW + timedelta(milliseconds=7))] == ["m5", "m6"]
        assert index.bookmarks("north", NOW, NOW + timedelta(hours=1), limit=-5) == []
        assert [b.camera for b in index.bookmarks("south", NOW, NOW + timedelta(seconds=1))] == ["south"]
    finally:
        index.close()


def _segment(camera: str, start: datetime, seconds: float, tmp_path: Path) -> Segment:
    path = tmp_path / camera / f"{start:%H%M%S}.mp4"
    return Segment(camera, path, start, start + timedelta(seconds=seconds), 1000, "h264", 320, 180, "ab", None)


def test_retention_deletes_bookmarks_older_than_the_oldest_kept_video(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    index = RecordingIndex(tmp_path / "index.sqlite3")
    try:
        old, kept = now - timedelta(hours=3), now - timedelta(minutes=30)
        for camera in ("north", "south"):
            index.close_segment(_segment(camera, old, 60, tmp_path))  # past retain=1h: deleted
            index.close_segment(_segment(camera, kept, 60, tmp_path))
        index.add_lock("south", old, old + timedelta(seconds=60), "police case")  # south keeps its old video
        index.add_bookmarks([
            Bookmark("north", old + timedelta(seconds=10), "motion", "onvif", "in the deleted video"),
            Bookmark("north", kept - timedelta(minutes=5), "motion", "onvif", "in the gap before the kept video"),
            Bookmark("north", kept + timedelta(seconds=10), "tamper", "onvif", "in the kept video"),
            Bookmark("south", old + timedelta(seconds=10), "blank", "picture", "in locked video"),
            Bookmark("east", now - timedelta(hours=2), "motion", "onvif", "no video, older than retain"),
            Bookmark("east", now - timedelta(minutes=10), "motion", "onvif", "no video, within retain"),
        ])  # fmt: skip
        settings = RecordingSection(dir=tmp_path, retain="1h", min_free="0%")
        retention = Retention(settings, index)
        retention.check()
        assert retention.deleted == 1  # north's old segment
        window = (now - timedelta(days=1), now + timedelta(days=1))
        left = {camera: [b.text for b in index.bookmarks(camera, *window)] for camera in ("north", "south", "east")}
        assert left == {"north": ["in the kept video"], "south": ["in locked video"],
                        "east": ["no video, within retain"]}  # fmt: skip
    finally:
        index.close()


@pytest.mark.parametrize("cameras", [0, 1, 40])
def test_pruning_finds_every_camera_by_the_index(tmp_path: Path, cameras: int) -> None:
    index = RecordingIndex(tmp_path / "index.sqlite3")
    try:
        index.add_bookmarks([Bookmark(f"cam{i:02d}", NOW, "motion", "onvif", "x") for i in range(cameras)])
        assert index.delete_bookmarks_before_video(NOW + timedelta(seconds=1)) == cameras
        assert index.delete_bookmarks_before_video(NOW + timedelta(seconds=1)) == 0
    finally:
        index.close()
