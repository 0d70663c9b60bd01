"""Check an export offline: ``edgeagent verify EXPORT.zip [--public-key FILE]``.

Needs nothing of the agent: the zip, and ideally the cabinet's public key (``GET /signing-key``). It checks
the signature over ``manifest.json`` (which covers the bookmarks it lists), the clip's size and SHA-256
against the manifest, and the hash chain of the source segments the manifest lists. The zip is hostile
until proven otherwise: only the four known names, bounded sizes read with a bound, nothing extracted to
disk.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from edgeagent.record.layout import CLIP_NAME, FORMAT, MANIFEST_NAME, PUBLIC_KEY_NAME, SIGNATURE_NAME
from edgeagent.record.signing import (
    SigningKeyError,
    fingerprint,
    load_public_pem,
    signature_bytes,
    verifies,
)

MAX_ENTRIES = 16
LIMITS = {
    MANIFEST_NAME: 1024 * 1024,
    SIGNATURE_NAME: 1024,
    PUBLIC_KEY_NAME: 16 * 1024,
    CLIP_NAME: 64 * 1024**3,
}
MAX_ZIP_BYTES = 65 * 1024**3
EXIT_OK, EXIT_ALTERED, EXIT_UNREADABLE = 0, 1, 2


class Unreadable(Exception):
    """Not an export this tool can read (or a hostile one): one line, exit 2."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class _Range(_Strict):
    start: str
    end: str


class _Clip(_Strict):
    name: str
    bytes: int
    sha256: str


class _Segment(_Strict):
    file: str
    start: str
    end: str
    bytes: int
    sha256: str
    prev_sha256: str | None


class _Bookmark(_Strict):
    time: str
    kind: str
    source: str
    text: str


class Manifest(_Strict):
    format: str
    agent: str
    camera: str
    requested: _Range
    actual: _Range
    clip: _Clip
    segments: list[_Segment]
    signing_key: str
    bookmarks: list[_Bookmark] = []  # ONVIF events and picture alarms of the range (absent from older exports)


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    ok_line: str = ""

    @property
    def exit_code(self) -> int:
        return EXIT_ALTERED if self.problems else EXIT_OK


def _entries(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise Unreadable(f"{len(infos)} entries: not an edgeagent export")
    entries: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename
        if name not in LIMITS:
            shown = name[:80].encode("unicode_escape").decode()
            raise Unreadable(f"unexpected entry {shown!r}: not an edgeagent export")
        if name in entries:
            raise Unreadable(f"{name} appears twice in the zip")
        if info.file_size > LIMITS[name]:
            raise Unreadable(f"{name} claims {info.file_size} bytes, over the limit of {LIMITS[name]}")
        if info.flag_bits & 0x1:
            raise Unreadable(f"{name} is encrypted")
        entries[name] = info
    for name in (CLIP_NAME, MANIFEST_NAME, SIGNATURE_NAME):
        if name not in entries:
            raise Unreadable(f"{name} is missing: not an edgeagent export")
    return entries


def _read_small(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    try:
        with archive.open(info) as entry:
            data = entry.read(LIMITS[info.filename] + 1)  # the reader stops at the declared size anyway
    except zipfile.BadZipFile as exc:
        if "CRC" in str(exc):
            return b"\0altered"  # bytes changed inside the zip: reported as an altered manifest or signature
        raise
    if len(data) > LIMITS[info.filename]:
        raise Unreadable(f"{info.filename} is larger than {LIMITS[info.filename]} bytes")
    return data


def _clip_digest(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[int, str] | None:
    """Size and SHA-256 of the clip; None when the zip's own CRC-32 says its bytes were changed."""
    digest, size = hashlib.sha256(), 0
    try:
        with archive.open(info) as entry:
            while chunk := entry.read(1024 * 1024):
                size += len(chunk)
                if size > LIMITS[CLIP_NAME]:
                    raise Unreadable(f"{CLIP_NAME} is larger than {LIMITS[CLIP_NAME]} bytes")
                digest.update(chunk)
    except zipfile.BadZipFile as exc:
        if "CRC" in str(exc):
            return None
        raise
    return size, digest.hexdigest()


def _parse_manifest(body: bytes) -> Manifest | None:
    try:
        return Manifest.model_validate(json.loads(body))
    except (ValueError, RecursionError, ValidationError):
        return None


def _check_signature(verdict: Verdict, body: bytes, signature_text: bytes, embedded: bytes | None,
                     trusted: Any) -> str:
    """Adds the signature's problems to ``verdict``; returns the phrase naming the key it checked."""
    signature = signature_bytes(signature_text)
    if signature is None:
        verdict.problems.append(f"signature altered: {SIGNATURE_NAME} is not an Ed25519 signature")
        return ""
    embedded_key = None
    if embedded is not None:
        try:
            embedded_key = load_public_pem(embedded)
        except SigningKeyError as exc:
            verdict.problems.append(f"{PUBLIC_KEY_NAME} altered: {exc}")
    if trusted is not None:
        if verifies(trusted, signature, body):
            return f"signed by the given public key {fingerprint(trusted)}"
        if embedded_key is not None and verifies(embedded_key, signature, body):
            verdict.problems.append(f"wrong key: the export was signed by {fingerprint(embedded_key)}, not by the "
                                    f"given public key {fingerprint(trusted)}")
        else:
            verdict.problems.append("manifest altered: the signature does not match manifest.json (or the "
                                    "signature itself was altered)")
        return ""
    if embedded_key is None:
        verdict.problems.append(f"no key to check the signature with: pass --public-key ({PUBLIC_KEY_NAME} absent)")
        return ""
    if not verifies(embedded_key, signature, body):
        verdict.problems.append("manifest altered: the signature does not match manifest.json (or the signature "
                                "itself was altered)")
        return ""
    return (f"signed by the key inside the export {fingerprint(embedded_key)} (not checked against a trusted "
            "key: pass --public-key)")


def _check_chain(verdict: Verdict, manifest: Manifest) -> None:
    segments = manifest.segments
    if not segments:
        verdict.problems.append("manifest lists no source segment")
    for before, after in zip(segments, segments[1:], strict=False):
        if after.prev_sha256 != before.sha256:
            verdict.problems.append(
                f"segment chain broken between {before.file} (ends {before.end}) and {after.file} (starts "
                f"{after.start}): a segment is missing from the chain or was replaced")
        if after.start < before.start:
            verdict.problems.append(f"segments out of order: {after.file} starts before {before.file}")


def verify_export(path: Path, public_key: bytes | None = None) -> Verdict:
    """Raises Unreadable for what is not an export (or an unreadable key); otherwise a Verdict."""
    trusted = None
    if public_key is not None:
        try:
            trusted = load_public_pem(public_key)
        except SigningKeyError as exc:
            raise Unreadable(f"--public-key: {exc}") from None
    try:
        if path.stat().st_size > MAX_ZIP_BYTES:
            raise Unreadable(f"{path.name} is larger than {MAX_ZIP_BYTES} bytes")
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as exc:
        raise Unreadable(f"{path}: not a readable zip ({exc})") from None
    verdict = Verdict()
    try:
        with archive:
            entries = _entries(archive)
            body = _read_small(archive, entries[MANIFEST_NAME])
            signature_text = _read_small(archive, entries[SIGNATURE_NAME])
            embedded = _read_small(archive, entries[PUBLIC_KEY_NAME]) if PUBLIC_KEY_NAME in entries else None
            key_phrase = _check_signature(verdict, body, signature_text, embedded, trusted)
            manifest = _parse_manifest(body)
            if manifest is None:
                verdict.problems.append("manifest altered: manifest.json is not a valid export manifest")
                return verdict
            if manifest.format != FORMAT:
                verdict.problems.append(f"manifest format {manifest.format[:40]!r} is not {FORMAT}")
            digested = _clip_digest(archive, entries[CLIP_NAME])
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
        raise Unreadable(f"{path}: damaged zip ({exc})") from None
    size, digest = digested or (0, "")
    if digested is None:
        verdict.problems.append(f"clip bytes altered: {CLIP_NAME} no longer matches its CRC-32 in the zip")
    elif (size, digest) != (manifest.clip.bytes, manifest.clip.sha256):
        verdict.problems.append(f"clip bytes altered: {CLIP_NAME} has {size} bytes with SHA-256 {digest}, the "
                                f"manifest says {manifest.clip.bytes} bytes with {manifest.clip.sha256}")
    _check_chain(verdict, manifest)
    if not verdict.problems:
        verdict.ok_line = (
            f"ok: {CLIP_NAME} ({size} bytes, SHA-256 {digest[:16]}...) matches the manifest, {key_phrase}; "
            f"camera {manifest.camera} of agent {manifest.agent}, {manifest.actual.start} to {manifest.actual.end}, "
            f"{len(manifest.segments)} source segment(s) in an unbroken hash chain, "
            f"{len(manifest.bookmarks)} bookmark(s)")
    return verdict


def main(export: str, public_key_file: str | None) -> int:
    """The CLI: prints one line (ok) or one line per problem; 0 ok, 1 altered, 2 not an export."""
    import sys

    try:
        key = None
        if public_key_file is not None:
            try:
                key = Path(public_key_file).read_bytes()[: LIMITS[PUBLIC_KEY_NAME] + 1]
            except OSError as exc:
                raise Unreadable(f"--public-key: {exc.strerror}: {public_key_file}") from None
        verdict = verify_export(Path(export), key)
    except Unreadable as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    for problem in verdict.problems:
        print(problem)
    if not verdict.problems:
        print(verdict.ok_line)
    return verdict.exit_code
