"""An export: the clip, a manifest that says where every byte came from, and the cabinet's signature.

``export.zip`` holds, in this order: ``clip.mp4`` (stored, not compressed), ``manifest.json`` (agent,
camera, requested and actual times, the clip's size and SHA-256, and every source segment with its own
SHA-256 and its link ``prev_sha256`` in the camera's hash chain; and the range's bookmarks, at most
1,000), ``manifest.sig`` (base64 Ed25519 signature over the exact bytes of ``manifest.json``) and
``public-key.pem`` (the signer's public key, for convenience only: an auditor checks against the key the
cabinet publishes). The zip is written in one pass to an unseekable sink, so it streams to the client
while the clip is cut.

Before signing, every source segment is hashed again and compared with the index: the cabinet never
signs video it cannot vouch for (a mismatch ends the zip before its manifest). Blocking: run in a thread.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgeagent import __version__
from edgeagent.record.bookmarks import bookmark_json
from edgeagent.record.clip import ClipError, ClipPlan, Sink, write_clip
from edgeagent.record.growing import segment_sha256
from edgeagent.record.layout import CLIP_NAME, FORMAT, MANIFEST_NAME, PUBLIC_KEY_NAME, SIGNATURE_NAME
from edgeagent.record.model import Bookmark, Segment
from edgeagent.record.signing import fingerprint, public_pem, sign
from edgeagent.record.times import rfc3339


class AlteredSegment(ClipError):
    status = 409


def check_segments(plan: ClipPlan) -> None:
    """AlteredSegment when a source file no longer has the SHA-256 the index recorded for it."""
    for segment in plan.segments:
        if segment_sha256(segment) != segment.sha256:
            raise AlteredSegment(f"recorded segment {segment.path.name} does not match its SHA-256 in the index "
                                 "(altered or damaged on disk); not signing it")


def segment_record(segment: Segment) -> dict[str, Any]:
    record: dict[str, Any] = {"file": segment.path.name, "start": rfc3339(segment.start), "end": rfc3339(segment.end),
              "bytes": segment.bytes, "sha256": segment.sha256, "prev_sha256": segment.prev_sha256}
    if segment.open:  # still being written: bytes and sha256 are those of the file's first bytes, its whole fragments
        record["open"] = True
    return record


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


class _ZipSink:
    """An unseekable file for ``zipfile`` (it then writes data descriptors instead of seeking back)."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def write(self, data: bytes) -> int:
        self.sink.write(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Export:
    manifest: dict[str, Any]
    signature: bytes


def write_export(plan: ClipPlan, sink: Sink, key: Ed25519PrivateKey, agent_id: str,
                 created: datetime | None = None, bookmarks: Sequence[Bookmark] = ()) -> Export:
    # The source segments are hashed again on a second thread while the clip is cut (hashlib releases the
    # GIL); the manifest is signed only once they all matched, else the zip ends unsigned and broken off.
    with ThreadPoolExecutor(1, thread_name_prefix="export-hash") as pool:
        checked = pool.submit(check_segments, plan)
        try:
            return _write_zip(plan, sink, key, agent_id, created, checked, bookmarks)
        finally:
            checked.cancel()


def _write_zip(plan: ClipPlan, sink: Sink, key: Ed25519PrivateKey, agent_id: str, created: datetime | None,
               checked: Future[None], bookmarks: Sequence[Bookmark]) -> Export:
    moment = created or datetime.now(UTC)
    clip_info = zipfile.ZipInfo(CLIP_NAME, date_time=moment.timetuple()[:6])
    with zipfile.ZipFile(_ZipSink(sink), "w", compression=zipfile.ZIP_STORED) as archive:
        with archive.open(clip_info, "w", force_zip64=True) as entry:
            clip = write_clip(plan, entry)
        manifest = {
            "format": FORMAT,
            "agent": agent_id,
            "agent_version": __version__,
            "camera": plan.camera,
            "created": rfc3339(moment),
            "requested": {"start": rfc3339(plan.requested_start), "end": rfc3339(plan.requested_end)},
            "actual": {"start": rfc3339(plan.start), "end": rfc3339(plan.end)},
            "clip": {"name": CLIP_NAME, "bytes": clip.bytes, "sha256": clip.sha256, "frames": clip.frames},
            "segments": [segment_record(s) for s in plan.segments],
            "bookmarks": [bookmark_json(b) for b in bookmarks],
            "signing_key": fingerprint(key.public_key()),
        }
        checked.result()  # raises AlteredSegment before anything is signed
        body = manifest_bytes(manifest)
        signature = sign(key, body)
        archive.writestr(MANIFEST_NAME, body, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr(SIGNATURE_NAME, signature)
        archive.writestr(PUBLIC_KEY_NAME, public_pem(key.public_key()))
    return Export(manifest, signature)
