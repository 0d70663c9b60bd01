"""The offline commands (``recordings export``, ``recordings list``) find the segment being written from its
file alone: a real torn fMP4 (the agent's own writer, cut mid-fragment) gives its whole fragments only,
hashed over exactly those bytes, and is never changed; a garbage, empty or header-less open file is left
out with a one-line note, never a crash or a broken zip."""

from __future__ import annotations

import hashlib
import io
import random
import struct
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import av
import pytest
import yaml

from edgeagent.camera.packet import StreamInfo
from edgeagent.cli import main
from edgeagent.record import fmp4
from edgeagent.record.index import RecordingIndex
from edgeagent.record.model import Segment
from edgeagent.record.open_segment import OpenSegment, find_open
from edgeagent.record.recorder import segment_path
from edgeagent.record.service import INDEX_NAME
from edgeagent.record.signing import load_or_create_key, public_pem
from edgeagent.record.verify import verify_export
from tests.test_record_growing import offered_while_writing
from tests.test_record_logic import encoded, packets

T0 = datetime(2026, 12, 1, 8, 0, 0, tzinfo=UTC)
FPS = 25
TB = Fraction(1, 90000)
STEP = 90000 // FPS
STREAM = StreamInfo("h264", 320, 180, TB, None, 1)
FIRST_S = 4  # the closed segment; the open one follows it


@dataclass
class Box:
    config: Path
    index_path: Path
    open_path: Path
    fragments: list[Segment]  # what the writer offered after each whole fragment of the open segment
    closed: Segment


def write(path: Path, units: list[tuple[bytes, bool]], start: datetime, first_dts: int) -> list[Segment]:
    """The agent's own writer; what it offered readers after each fragment."""
    items = packets(units, STREAM, first_dts, arrival=0.0)
    return offered_while_writing(path, items, start, None, first_dts + len(items) * STEP)


@pytest.fixture
def box(tmp_path: Path) -> Box:
    """A closed 4 s segment in the index, then an open one (8 s written) cut in the middle of a fragment."""
    root = tmp_path / "recordings"
    units = encoded(FPS * (FIRST_S + 8), gop=FPS, width=320, height=180)
    first = segment_path(root, "north", T0)
    write(first, units[: FPS * FIRST_S], T0, 0)
    data = first.read_bytes()
    closed = Segment("north", first, T0, T0 + timedelta(seconds=FIRST_S), len(data), "h264", 320, 180,
                     hashlib.sha256(data).hexdigest(), None)  # fmt: skip
    second_start = closed.end
    second = segment_path(root, "north", second_start)
    offered = write(second, units[FPS * FIRST_S :], second_start, FPS * FIRST_S * STEP)
    whole, next_whole = offered[4].bytes, offered[5].bytes
    with open(second, "r+b") as file:  # torn: half of the sixth fragment reached the disk
        file.truncate(whole + (next_whole - whole) // 2)
    index = RecordingIndex(root / INDEX_NAME)
    index.close_segment(closed)
    index.open_segment("north", second, second_start, "h264", 320, 180)
    index.close()
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump({"agent": {"id": "cabinet-17", "state_dir": str(tmp_path / "state")},
                                      "recording": {"dir": str(root)}, "cameras": {}}))  # fmt: skip
    return Box(config, root / INDEX_NAME, second, offered, closed)


def fingerprint(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def export(box: Box, start: datetime, end: datetime, output: Path, capsys: pytest.CaptureFixture[str]
           ) -> tuple[int, str, str]:
    def rfc(moment: datetime) -> str:
        return moment.isoformat().replace("+00:00", "Z")

    return cli("recordings", "export", "-c", str(box.config), "--camera", "north", "--start", rfc(start), "--end",
               rfc(end), "-o", str(output), capsys=capsys)


def clip_times(zipped: Path) -> list[float]:
    """Presentation times of the clip's frames from its start on; a decoder error fails the test."""
    with zipfile.ZipFile(zipped) as archive:
        data = archive.read("clip.mp4")
    times = []
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            assert not frame.is_corrupt and frame.pts is not None and stream.time_base is not None
            times.append(float(frame.pts * stream.time_base))
    return [t for t in times if t >= max(t for t in times if t < 0.002)]  # the pre-roll sits before 0


@pytest.mark.parametrize("row", ["open row", "row lost"])
def test_a_torn_open_file_gives_its_whole_fragments_only_and_is_left_untouched(box: Box, row: str) -> None:
    if row == "row lost":  # a power cut took the open row with it: the file alone says it is the newest
        index = RecordingIndex(box.index_path)
        index.delete_segment(box.open_path)
        index.close()
    before = fingerprint(box.open_path)
    assert not fmp4.scan(box.open_path).clean  # really torn
    index = RecordingIndex(box.index_path)
    try:
        found = find_open(index, box.index_path.parent, "north")
    finally:
        index.close()
    expected = box.fragments[4]  # what the recorder itself offered readers at that point
    segment = found.segment
    assert found.note is None and segment is not None and segment.open
    assert (segment.path, segment.start, segment.bytes, segment.sha256) == (box.open_path, expected.start,
                                                                           expected.bytes, expected.sha256)
    assert abs((segment.end - expected.end).total_seconds()) < 1e-3
    assert segment.sha256 == hashlib.sha256(before[0][: segment.bytes]).hexdigest() != hashlib.sha256(
        before[0]).hexdigest()
    assert segment.prev_sha256 == box.closed.sha256  # it continues the camera's hash chain
    assert fingerprint(box.open_path) == before


def test_an_export_reaches_into_the_open_file_up_to_its_last_whole_fragment(
    box: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = fingerprint(box.open_path)
    start, output = T0 + timedelta(seconds=2), tmp_path / "out.zip"
    code, out, err = export(box, start, T0 + timedelta(seconds=60), output, capsys)
    assert code == 0 and err == "", err
    assert "2 segment(s), the last still open" in out, out
    verdict = verify_export(output, public_pem(load_or_create_key(tmp_path / "state").public_key()))
    assert verdict.problems == [] and verdict.ok_line.startswith("ok"), verdict.problems
    with zipfile.ZipFile(output) as archive:
        manifest = yaml.safe_load(archive.read("manifest.json"))
    first, last = manifest["segments"]
    reached = box.fragments[4].end
    assert last["open"] is True and last["bytes"] == box.fragments[4].bytes and "open" not in first
    assert last["sha256"] == box.fragments[4].sha256 and last["prev_sha256"] == first["sha256"]
    actual_end = datetime.fromisoformat(manifest["actual"]["end"].replace("Z", "+00:00"))
    assert abs((actual_end - reached).total_seconds()) < 1e-3  # up to the last whole fragment, not beyond
    times = clip_times(output)
    shown = times[-1] + 1 / FPS
    assert abs(shown - (reached - start).total_seconds()) < 1.5 / FPS, (shown, reached - start)
    assert abs(len(times) - (reached - start).total_seconds() * FPS) <= 1
    assert fingerprint(box.open_path) == before


def test_recordings_list_shows_the_open_file_up_to_its_last_whole_fragment(
    box: Box, capsys: pytest.CaptureFixture[str]
) -> None:
    before = fingerprint(box.open_path)
    code, out, err = cli("recordings", "list", "-c", str(box.config), "--segments", capsys=capsys)
    assert code == 0 and err == "", err
    reached = box.fragments[4].end.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert f"2026-12-01T08:00:00.000Z .. {reached}" in out, out  # one span, the closed and the open segment
    assert "still being recorded" in out
    [line] = [line for line in out.splitlines() if "open (whole fragments)" in line]
    assert f"{box.fragments[4].bytes} B" in line and str(box.open_path) in line
    assert fingerprint(box.open_path) == before


def without_moov(data: bytes) -> bytes:
    """The file with its moov box taken out (ftyp, then fragments no one can read)."""
    out, offset = b"", 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, offset)
        if kind != b"moov":
            out += data[offset : offset + size]
        offset += size
    return out


def header_end(data: bytes) -> int:
    """Where ftyp and moov end: a segment opened before its first fragment reached the disk."""
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, offset)
        if kind not in (b"ftyp", b"moov"):
            break
        offset += size
    return offset


HOSTILE = {
    "empty": (lambda data: b"", "no MP4 header (moov) in it"),
    "garbage": (lambda data: random.Random(7).randbytes(50_000), "no MP4 header (moov) in it"),
    "no moov": (without_moov, "no MP4 header (moov) in it"),
    "header only": (lambda data: data[: header_end(data)], "no whole fragment in it yet"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_an_unreadable_open_file_is_left_out_with_a_note_never_a_crash_or_a_broken_zip(
    box: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    make, reason = HOSTILE[case]
    box.open_path.write_bytes(make(box.open_path.read_bytes()))
    before = fingerprint(box.open_path)
    note = f"note: the open segment {box.open_path.name} of camera north is left out: {reason}"

    output = tmp_path / "out.zip"  # a range that the closed segment covers in part: exported, with the note
    code, out, err = export(box, T0 + timedelta(seconds=1), T0 + timedelta(seconds=30), output, capsys)
    assert code == 0 and err.splitlines() == [f"recordings export: {note}"], err
    assert "1 segment(s), clip" in out and "still being recorded" not in out, out
    verdict = verify_export(output, public_pem(load_or_create_key(tmp_path / "state").public_key()))
    assert verdict.problems == [], verdict.problems
    assert abs(len(clip_times(output)) - (FIRST_S - 1) * FPS) <= 1

    inside = tmp_path / "inside.zip"  # a range within the open file only: one clear line, no zip at all
    code, out, err = export(box, T0 + timedelta(seconds=6), T0 + timedelta(seconds=8), inside, capsys)
    assert code == 1 and out == "", out
    assert err.splitlines() == [f"recordings export: {note}", "recordings export: nothing was recorded in this range"]
    assert not inside.exists() and not inside.with_name(inside.name + ".partial").exists()

    code, out, err = cli("recordings", "list", "-c", str(box.config), "--segments", capsys=capsys)
    assert code == 0 and err.splitlines() == [f"recordings list: {note}"], err
    assert "still being recorded" not in out and "open (whole fragments)" not in out
    assert "  recorded 2026-12-01T08:00:00.000Z .. 2026-12-01T08:00:04.000Z" in out, out
    assert fingerprint(box.open_path) == before


def test_an_open_path_that_is_a_directory_is_a_note_and_a_camera_name_never_leaves_the_recordings(
    box: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    box.open_path.unlink()
    box.open_path.mkdir()  # a directory where the open file should be
    index = RecordingIndex(box.index_path)
    try:
        found = find_open(index, box.index_path.parent, "north")
        assert found.segment is None and found.note is not None and box.open_path.name in found.note
        assert found.note.startswith("the open segment") and "\n" not in found.note
        outside = tmp_path / "elsewhere" / "2026-12-01"  # a camera named ".." would be looked for here
        outside.mkdir(parents=True)
        (outside / "x-20261201T080005.000000Z.mp4").write_bytes(box.closed.path.read_bytes())
        for name in ("..", "../elsewhere", "", "."):
            assert find_open(index, box.index_path.parent, name) == OpenSegment(None)
    finally:
        index.close()
    code, out, err = export(box, T0 + timedelta(seconds=1), T0 + timedelta(seconds=3), tmp_path / "x.zip", capsys)
    assert code == 0 and "1 segment(s), clip" in out and err.count("\n") == 1 and "note:" in err, (out, err)
