"""Recording logic without a camera: settings, the index, the fMP4 writer and its repair, and the recorder
fed synthetic packets (a real encoder's Annex B output) through a real hub."""

from __future__ import annotations

import asyncio
import shutil
import time
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import av
import pytest

from edgeagent.camera.packet import Packet, StreamInfo
from edgeagent.config import ConfigError, parse_config
from edgeagent.record import fmp4
from edgeagent.record.index import RecordingIndex
from edgeagent.record.model import GapReason, Segment
from edgeagent.record.recorder import QUEUE_PACKETS
from edgeagent.record.service import RecordingStats
from edgeagent.record.writer import SegmentWriter, truncate_to_whole_fragments
from tests.support.recording import Recording, blocking, ffmpeg_errors, frame_times, probe, until

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TB = Fraction(1, 90000)
STEP = 3600  # 25 fps at 90 kHz


def encoded(
    count: int, gop: int = 25, codec: str = "libx264", width: int = 160, height: int = 96
) -> list[tuple[bytes, bool]]:
    """Annex B access units from a real encoder, parameter sets in band on every keyframe (no SDP)."""
    encoder = av.CodecContext.create(codec, "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = Fraction(1, 25)
    encoder.options = {"x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:repeat-headers=1",
                       "preset": "ultrafast"}  # fmt: skip
    out = []
    for index in range(count):
        frame = av.VideoFrame(width, height, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([index * 7 % 256]) * plane.buffer_size)
        frame.pts = index
        out += [(bytes(p), p.is_keyframe) for p in encoder.encode(frame)]
    out += [(bytes(p), p.is_keyframe) for p in encoder.encode(None)]
    return out


def packets(
    units: list[tuple[bytes, bool]], stream: StreamInfo, first_dts: int = 0, arrival: float | None = None
) -> list[Packet]:
    """Packets as a camera sends them: 25 a second (``arrival`` of the first: now)."""
    base = time.monotonic() if arrival is None else arrival
    return [Packet(data, first_dts + i * STEP, first_dts + i * STEP, key, stream, base + i / 25) for i, (data, key) in
            enumerate(units)]  # fmt: skip


STREAM = StreamInfo("h264", 160, 96, TB, None, 1)  # no extradata: the camera's SDP had no parameter sets


# -- settings ---------------------------------------------------------------------------------------


def test_recording_settings_read_durations_and_sizes_and_reject_bad_ones_in_one_line() -> None:
    config = parse_config({"agent": {"id": "a"}, "recording": {"retain": "12h", "min_free": "2GB",
                                                              "max_bytes": "500MB"}, "cameras": {}})  # fmt: skip
    assert config.recording is not None
    assert config.recording.retain_s == 12 * 3600
    assert config.recording.min_free_bytes(10**12) == 2 * 10**9
    assert config.recording.max_bytes_of(0) == 500 * 10**6
    percent = parse_config({"agent": {"id": "a"}, "recording": {"min_free": "10%"}}).recording
    assert percent is not None and percent.min_free_bytes(1000) == 100
    for field, value, message in [("retain", "3 weeks", "duration"), ("min_free", "lots", "size"),
                                  ("segment_s", 0.5, "greater than or equal")]:  # fmt: skip
        with pytest.raises(ConfigError) as error:
            parse_config({"agent": {"id": "a"}, "recording": {field: value}})
        assert len(error.value.lines) == 1 and error.value.lines[0].startswith(f"recording.{field}: ")
        assert message in error.value.lines[0]
    camera = parse_config({"agent": {"id": "a"}, "cameras": {"n": {"url": "rtsp://h/s", "record": False}}})
    assert camera.cameras["n"].record is False


# -- index ------------------------------------------------------------------------------------------


def segment(index: int, seconds: float = 10, camera: str = "north") -> Segment:
    start = T0 + timedelta(seconds=10 * index)
    return Segment(camera, Path(f"/r/{index}.mp4"), start, start + timedelta(seconds=seconds), 100, "h264", 1, 1,
                   f"h{index}", None)  # fmt: skip


def test_index_spans_join_adjacent_segments_and_gaps_keep_their_reason(tmp_path: Path) -> None:
    index = RecordingIndex(tmp_path / "i.db")
    for i, seconds in enumerate([10, 10, 4, 10]):
        index.close_segment(segment(i, seconds))
    assert index.spans("north") == [(T0, T0 + timedelta(seconds=24)), (T0 + timedelta(seconds=30),
                                                                       T0 + timedelta(seconds=40))]  # fmt: skip
    clipped = index.spans("north", T0 + timedelta(seconds=5), T0 + timedelta(seconds=35))
    assert clipped[0][0] == T0 + timedelta(seconds=5) and clipped[-1][1] == T0 + timedelta(seconds=35)
    index.add_gap("north", T0 + timedelta(seconds=24), None, GapReason.CAMERA_OFFLINE)
    assert index.has_open_gap("north") and index.gaps("north")[0].end > T0 + timedelta(days=1)  # open: ends now
    index.close_gaps("north", T0 + timedelta(seconds=30))
    assert [(g.start, g.end, g.reason) for g in index.gaps("north")] == [
        (T0 + timedelta(seconds=24), T0 + timedelta(seconds=30), GapReason.CAMERA_OFFLINE)]
    assert index.gaps("other") == [] and index.spans("other") == []


def test_index_locks_protect_segments_from_retention_and_can_reach_into_the_future(tmp_path: Path) -> None:
    index = RecordingIndex(tmp_path / "i.db")
    for i in range(4):
        index.close_segment(segment(i))
    lock = index.add_lock("north", T0 + timedelta(seconds=15), datetime.now(UTC) + timedelta(days=1), "incident")
    assert [s.path.name for s in index.deletable()] == ["0.mp4"]
    assert index.locks("north") == [lock] and index.locks("south") == []
    with pytest.raises(ValueError):
        index.add_lock("north", T0, T0, "empty")
    assert index.remove_lock(lock.id) and not index.remove_lock(lock.id)
    assert len(index.deletable()) == 4


async def test_index_async_wrappers_run_off_the_event_loop(tmp_path: Path) -> None:
    index = blocking(RecordingIndex, tmp_path / "i.db")
    blocking(index.close_segment, segment(0))
    assert await index.aspans("north") == blocking(index.spans, "north")
    lock = await index.aadd_lock("north", T0, T0 + timedelta(seconds=1), "x")
    assert await index.alocks("north") == [lock] and await index.aremove_lock(lock.id)


# -- writer and repair ------------------------------------------------------------------------------


def write_segment(path: Path, count: int = 100) -> None:
    items = packets(encoded(count), STREAM)
    writer = SegmentWriter(path, items[0], T0)
    for item in items[1:]:
        writer.push(item)
    size, end, _ = writer.close()
    assert end == T0 + timedelta(seconds=count / 25) and size == path.stat().st_size


def test_a_stream_without_parameter_sets_in_its_sdp_still_gives_a_playable_file(tmp_path: Path) -> None:
    path = tmp_path / "a.mp4"
    write_segment(path)
    assert ffmpeg_errors(path) == ""
    assert probe(path)["nb_read_frames"] == "100"
    layout = fmp4.scan(path)
    assert layout.clean and layout.start == T0 and layout.duration_s == 4.0 and layout.codec == "h264"
    assert layout.fragments >= 4  # about one a second: the recovery points


@pytest.mark.parametrize("cut", [0.35, 0.5, 0.8, 0.97])
def test_a_torn_tail_is_cut_back_to_the_last_whole_fragment_and_plays(tmp_path: Path, cut: float) -> None:
    path = tmp_path / "a.mp4"
    write_segment(path, 150)
    torn = tmp_path / "torn.mp4"
    shutil.copy(path, torn)
    with open(torn, "r+b") as file:
        file.truncate(int(path.stat().st_size * cut))
    assert not fmp4.scan(torn).clean
    size, seconds, _ = truncate_to_whole_fragments(torn)
    assert size == torn.stat().st_size and fmp4.scan(torn).clean
    assert 6 * cut - 1.7 <= seconds <= 6 * cut  # whole fragments only, nothing invented
    assert ffmpeg_errors(torn) == ""
    assert len(frame_times(torn, T0)) == round(seconds * 25)


# -- the recorder, fed through a hub ----------------------------------------------------------------


async def feed(rec: Recording, items: list[Packet]) -> None:
    for offset in range(0, len(items), 50):
        for item in items[offset : offset + 50]:
            rec.hub.publish(item)
        await asyncio.sleep(0.02)


async def test_timestamps_that_run_backwards_start_a_new_segment_and_never_break_a_file(tmp_path: Path) -> None:
    units = encoded(150)
    async with Recording(None, tmp_path / "rec", segment_s=60) as rec:
        base = time.monotonic()
        await feed(rec, packets(units[:100], STREAM, first_dts=900_000, arrival=base))
        await feed(rec, packets(units[100:], STREAM, first_dts=0, arrival=base + 4))  # the camera's clock went back
        await until(lambda: rec.recorder.state == "recording" and len(rec.index.segments("north")) == 1, 10,
                    "the first segment closed")  # fmt: skip
    segments = rec.index.segments("north")
    assert len(segments) == 2
    assert [g.reason for g in rec.index.gaps("north")][0] == GapReason.TIMESTAMP_JUMP
    assert segments[0].end == segments[0].start + timedelta(seconds=4)
    for item in segments:
        assert ffmpeg_errors(item.path) == ""


async def test_packets_dropped_for_a_slow_disk_are_counted_and_leave_a_gap(tmp_path: Path) -> None:
    units = encoded(QUEUE_PACKETS + 300)
    async with Recording(None, tmp_path / "rec", segment_s=60) as rec:
        items = packets(units, STREAM)
        await feed(rec, items[:50])
        await until(lambda: rec.recorder.state == "recording", 10, "recording")
        for item in items[50:]:  # a burst the recorder cannot take in one go
            rec.hub.publish(item)
        await until(lambda: len(rec.index.segments("north")) >= 1, 10, "the interrupted segment closed")
        await until(lambda: rec.recorder.state == "recording", 10, "recording again")
    assert rec.recorder.dropped > 0
    assert GapReason.RECORDER_OVERLOADED in [g.reason for g in rec.index.gaps("north")]
    for item in rec.index.segments("north"):
        assert ffmpeg_errors(item.path) == ""


def test_recording_stats_are_the_retained_mqtt_message() -> None:
    stats = RecordingStats("north", "paused", "disk full", T0, T0 + timedelta(hours=1), 10, 20, 7.2e8, 0, 3.5,
                           0.00125)  # fmt: skip
    assert stats.to_json() == {
        "state": "paused", "reason": "disk full", "oldest": "2026-01-01T00:00:00Z",
        "newest": "2026-01-01T01:00:00Z", "bytes": 10, "bytes_written": 20, "bytes_per_hour": 720000000,
        "dropped": 0, "disk_days": 3.5, "endurance_used": 0.00125,
    }  # fmt: skip
