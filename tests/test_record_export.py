"""Exports and ``edgeagent verify``: a real export of real segments, then altered the ways an adversary or
a damaged disk would alter it; verify runs as its own process, as an auditor would run it."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import zipfile
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgeagent.record.clip import plan_clip
from edgeagent.record.export import AlteredSegment, write_export
from edgeagent.record.model import Bookmark
from edgeagent.record.signing import load_or_create_key, public_pem, sign
from tests.support.recordings import T0, FakeIndex, recorded

ROOT = Path(__file__).resolve().parent.parent
MARKS = [Bookmark("north", T0 + timedelta(seconds=3), "motion", "onvif", "ONVIF motion: tns1:RuleEngine/Motion"),
         Bookmark("north", T0 + timedelta(seconds=8.25), "blank", "picture", "picture blank")]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> FakeIndex:
    return recorded(tmp_path_factory.mktemp("segments"), count=3, seconds=4)


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Ed25519PrivateKey:
    return load_or_create_key(tmp_path_factory.mktemp("state"))


@pytest.fixture(scope="module")
def exported(index: FakeIndex, key: Ed25519PrivateKey, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "export.zip"
    start, end = T0 + timedelta(seconds=2.5), T0 + timedelta(seconds=10)
    with path.open("wb") as file:
        write_export(plan_clip("north", index.segments_, start, end), file, key, "cabinet-17", bookmarks=MARKS)
    return path


@pytest.fixture
def public_key(key: Ed25519PrivateKey, tmp_path: Path) -> Path:
    path = tmp_path / "cabinet.pem"
    path.write_bytes(public_pem(key.public_key()))
    return path


def verify(export: Path, public_key: Path | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "edgeagent", "verify", str(export)]
    if public_key is not None:
        argv += ["--public-key", str(public_key)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, cwd="/")


def rezip(source: Path, target: Path, change: dict[str, bytes], extra: dict[str, bytes] | None = None) -> Path:
    """A copy of ``source`` with some entries replaced (a consistent zip: only the content differs)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            new.writestr(info.filename, change.get(info.filename, old.read(info)))
        for name, data in (extra or {}).items():
            new.writestr(name, data)
    return target


def lines(run: subprocess.CompletedProcess[str]) -> list[str]:
    return run.stdout.strip().splitlines()


def test_an_untouched_export_verifies_against_the_cabinets_key(exported: Path, public_key: Path) -> None:
    run = verify(exported, public_key)
    assert run.returncode == 0, run.stdout + run.stderr
    [line] = lines(run)
    assert line.startswith("ok: clip.mp4") and "signed by the given public key SHA256:" in line
    assert "3 source segment(s) in an unbroken hash chain, 2 bookmark(s)" in line and "camera north" in line


def test_without_a_key_it_says_which_key_signed_and_that_it_was_not_checked(exported: Path) -> None:
    run = verify(exported)
    assert run.returncode == 0
    assert "not checked against a trusted key" in run.stdout


def test_the_manifest_records_times_hashes_and_the_chain(exported: Path, index: FakeIndex) -> None:
    with zipfile.ZipFile(exported) as archive:
        assert [i.filename for i in archive.infolist()] == ["clip.mp4", "manifest.json", "manifest.sig",
                                                            "public-key.pem"]
        assert archive.getinfo("clip.mp4").compress_type == zipfile.ZIP_STORED
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["agent"] == "cabinet-17" and manifest["camera"] == "north"
    assert manifest["requested"] == {"start": "2026-12-01T08:00:02.500Z", "end": "2026-12-01T08:00:10.000Z"}
    assert manifest["actual"] == manifest["requested"]
    assert [s["sha256"] for s in manifest["segments"]] == [s.sha256 for s in index.segments_]
    assert [s["prev_sha256"] for s in manifest["segments"]][1:] == [s.sha256 for s in index.segments_[:-1]]
    assert manifest["segments"][0]["start"] == "2026-12-01T08:00:00.000Z"
    assert manifest["bookmarks"] == [
        {"time": "2026-12-01T08:00:03.000Z", "kind": "motion", "source": "onvif",
         "text": "ONVIF motion: tns1:RuleEngine/Motion"},
        {"time": "2026-12-01T08:00:08.250Z", "kind": "blank", "source": "picture", "text": "picture blank"}]


def test_one_changed_byte_in_the_clip_fails(exported: Path, public_key: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(exported) as archive:
        clip = bytearray(archive.read("clip.mp4"))
    clip[len(clip) // 2] ^= 0x01
    run = verify(rezip(exported, tmp_path / "x.zip", {"clip.mp4": bytes(clip)}), public_key)
    assert run.returncode == 1
    assert lines(run) == [line for line in lines(run) if line.startswith("clip bytes altered: clip.mp4 has")]
    assert len(lines(run)) == 1


def test_one_byte_flipped_in_the_file_itself_fails_as_altered_clip_bytes(exported: Path, public_key: Path,
                                                                          tmp_path: Path) -> None:
    data = bytearray(exported.read_bytes())
    data[len(data) // 3] ^= 0x80  # inside the clip's stored bytes: the zip's CRC-32 no longer matches
    target = tmp_path / "flipped.zip"
    target.write_bytes(bytes(data))
    run = verify(target, public_key)
    assert run.returncode == 1 and lines(run) == ["clip bytes altered: clip.mp4 no longer matches its CRC-32 in "
                                                  "the zip"]


def test_a_changed_manifest_fails(exported: Path, public_key: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(exported) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    manifest["actual"]["start"] = "2026-12-01T08:00:03.000Z"
    changed = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    run = verify(rezip(exported, tmp_path / "m.zip", {"manifest.json": changed}), public_key)
    assert run.returncode == 1
    assert lines(run) == ["manifest altered: the signature does not match manifest.json (or the signature "
                          "itself was altered)"]


@pytest.mark.parametrize("change", ["text", "time", "removed", "added"])
def test_a_changed_bookmark_fails(exported: Path, public_key: Path, tmp_path: Path, change: str) -> None:
    """The bookmarks are in the signed manifest: none can be moved, reworded, hidden or slipped in."""
    with zipfile.ZipFile(exported) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    marks = manifest["bookmarks"]
    if change == "text":
        marks[0]["text"] = "nothing happened"
    elif change == "time":
        marks[0]["time"] = "2026-12-01T08:00:04.000Z"
    elif change == "removed":
        del marks[1]
    else:
        marks.append({"time": "2026-12-01T08:00:05.000Z", "kind": "tamper", "source": "onvif", "text": "x"})
    changed = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    run = verify(rezip(exported, tmp_path / "b.zip", {"manifest.json": changed}), public_key)
    assert run.returncode == 1 and lines(run) == ["manifest altered: the signature does not match manifest.json "
                                                  "(or the signature itself was altered)"]


def test_an_export_without_bookmarks_verifies(index: FakeIndex, key: Ed25519PrivateKey, public_key: Path,
                                               tmp_path: Path) -> None:
    """One made before bookmarks existed has no such key; one made now with none has an empty list."""
    path = tmp_path / "plain.zip"
    with path.open("wb") as file:
        write_export(plan_clip("north", index.segments_, T0, T0 + timedelta(seconds=2)), file, key, "cabinet-17")
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["bookmarks"] == []
    run = verify(path, public_key)
    assert run.returncode == 0 and "0 bookmark(s)" in run.stdout
    del manifest["bookmarks"]
    older = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    resigned = {"manifest.json": older, "manifest.sig": sign(key, older)}
    run = verify(rezip(path, tmp_path / "old.zip", resigned), public_key)
    assert run.returncode == 0 and "0 bookmark(s)" in run.stdout, run.stdout


def test_a_wrong_key_fails(exported: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    other.write_bytes(public_pem(Ed25519PrivateKey.generate().public_key()))
    run = verify(exported, other)
    assert run.returncode == 1
    [line] = lines(run)
    assert line.startswith("wrong key: the export was signed by SHA256:") and "not by the given public key" in line


def test_an_export_resigned_with_another_key_fails_against_the_cabinets_key(
        exported: Path, public_key: Path, tmp_path: Path) -> None:
    forger = Ed25519PrivateKey.generate()
    with zipfile.ZipFile(exported) as archive:
        body = archive.read("manifest.json")
    from edgeagent.record.signing import sign

    forged = rezip(exported, tmp_path / "f.zip", {"manifest.sig": sign(forger, body),
                                                  "public-key.pem": public_pem(forger.public_key())})
    assert verify(forged).returncode == 0  # consistent in itself ...
    run = verify(forged, public_key)  # ... but not the cabinet's
    assert run.returncode == 1 and lines(run)[0].startswith("wrong key")


def test_a_malformed_signature_fails(exported: Path, public_key: Path, tmp_path: Path) -> None:
    run = verify(rezip(exported, tmp_path / "s.zip", {"manifest.sig": b"not base64 at all!\n"}), public_key)
    assert run.returncode == 1 and lines(run) == ["signature altered: manifest.sig is not an Ed25519 signature"]


def test_a_segment_missing_from_the_chain_fails(index: FakeIndex, key: Ed25519PrivateKey, public_key: Path,
                                                tmp_path: Path) -> None:
    # The index lost the middle segment: the last one's link points at a segment the export does not hold.
    segments = [index.segments_[0], index.segments_[2]]
    path = tmp_path / "missing.zip"
    with path.open("wb") as file:
        write_export(plan_clip("north", segments, T0, T0 + timedelta(seconds=12)), file, key, "cabinet-17")
    run = verify(path, public_key)
    assert run.returncode == 1
    [line] = lines(run)
    assert line.startswith("segment chain broken between part000.mp4") and "missing from the chain" in line


def test_the_cabinet_does_not_sign_a_segment_altered_on_disk(index: FakeIndex, key: Ed25519PrivateKey) -> None:
    wrong = [replace(index.segments_[0], sha256="0" * 64)]
    with pytest.raises(AlteredSegment, match="part000.mp4 does not match its SHA-256"):
        write_export(plan_clip("north", wrong, T0, T0 + timedelta(seconds=2)), io.BytesIO(), key, "cabinet-17")


# -- hostile zips: a clear line and exit 2, never a traceback ------------------------------------------


def _hostile(tmp_path: Path, name: str, build: dict[str, bytes]) -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for entry, data in build.items():
            archive.writestr(entry, data)
    return path


@pytest.mark.parametrize(("case", "expected"), [
    ("traversal", "unexpected entry '../../etc/cron.d/x'"),
    ("bomb", "manifest.json claims 209715200 bytes, over the limit"),
    ("many", "entries: not an edgeagent export"),
    ("missing", "manifest.sig is missing"),
    ("not-a-zip", "not a readable zip"),
])
def test_hostile_zips_get_one_clear_line(case: str, expected: str, exported: Path, tmp_path: Path) -> None:
    if case == "traversal":
        path = rezip(exported, tmp_path / "t.zip", {}, {"../../etc/cron.d/x": b"* * * * * root sh"})
    elif case == "bomb":
        path = _hostile(tmp_path, "bomb.zip", {"clip.mp4": b"", "manifest.json": b"0" * (200 * 1024 * 1024),
                                               "manifest.sig": b""})
        assert path.stat().st_size < 1024 * 1024
    elif case == "many":
        path = _hostile(tmp_path, "many.zip", {f"clip{i}.mp4": b"" for i in range(40)})
    elif case == "missing":
        path = _hostile(tmp_path, "missing.zip", {"clip.mp4": b"", "manifest.json": b"{}"})
    else:
        path = tmp_path / "plain.zip"
        path.write_bytes(b"PK\x03\x04 this is not a zip")
    run = verify(path)
    assert run.returncode == 2
    assert run.stdout == "" and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert expected in run.stderr


def test_a_deeply_nested_manifest_is_an_altered_manifest_not_a_crash(exported: Path, tmp_path: Path) -> None:
    deep = b"[" * 500_000 + b"]" * 500_000
    run = verify(rezip(exported, tmp_path / "deep.zip", {"manifest.json": deep}))
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "manifest altered: manifest.json is not a valid export manifest" in run.stdout


def test_an_unreadable_public_key_is_a_clear_error(exported: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    run = verify(exported, bad)
    assert run.returncode == 2 and run.stderr.startswith("verify: --public-key: not a PEM public key")
    run = verify(exported, tmp_path / "absent.pem")
    assert run.returncode == 2 and "No such file" in run.stderr


# -- the key -------------------------------------------------------------------------------------------


def test_the_signing_key_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    first = load_or_create_key(tmp_path / "state")
    path = tmp_path / "state" / "signing-key.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["signing-key.pem"]  # no partial file left behind
    again = load_or_create_key(tmp_path / "state")
    assert public_pem(again.public_key()) == public_pem(first.public_key())


def test_verify_needs_neither_pyav_nor_the_agent(exported: Path, public_key: Path) -> None:
    # An auditor's machine: no PyAV, no numpy, no aiortc; only the CLI, pydantic and cryptography.
    code = ("import sys\n"
            "for name in ('av', 'numpy', 'aiortc', 'cv2', 'paho'): sys.modules[name] = None\n"
            "from edgeagent.cli import main\n"
            f"sys.exit(main(['verify', {str(exported)!r}, '--public-key', {str(public_key)!r}]))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/",
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("ok: clip.mp4")
