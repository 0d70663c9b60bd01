"""After a crash or a lost database: find what is on the disk, cut torn tails, put it back in the index.

The files are the truth. Each holds its wall-clock start (a tag in its header, and its name) and its
fragments give its length; the hash chain is recomputed from the bytes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edgeagent.record import fmp4
from edgeagent.record.index import RecordingIndex, now_utc
from edgeagent.record.model import GapReason, Segment
from edgeagent.record.segment_names import start_from_name
from edgeagent.record.writer import truncate_to_whole_fragments

log = logging.getLogger(__name__)




def segment_from_file(camera: str, path: Path, prev_sha: str | None) -> Segment | None:
    """The segment a file holds, its torn tail cut first; None when nothing in it plays."""
    try:
        size, duration, digest = truncate_to_whole_fragments(path)
        layout = fmp4.scan(path)
    except (OSError, ValueError, IndexError) as exc:
        log.warning("recording %s: unreadable (%s); left out of the index", path, exc)
        return None
    start = layout.start or start_from_name(path)
    if start is None or duration <= 0 or not layout.codec:
        return None
    end = start + timedelta(seconds=duration)
    return Segment(camera, path, start, end, size, layout.codec, layout.width, layout.height, digest, prev_sha)


def camera_files(root: Path) -> dict[str, list[Path]]:
    """Every segment file under ``root``, per camera, in order of start."""
    found: dict[str, list[Path]] = {}
    if not root.is_dir():
        return found
    for camera_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        files = [p for p in camera_dir.glob("*/*.mp4") if start_from_name(p) is not None]
        found[camera_dir.name] = sorted(files, key=lambda p: start_from_name(p) or datetime.min.replace(tzinfo=UTC))
    return found


def repair(index: RecordingIndex, root: Path) -> list[Segment]:
    """At start: repair every segment that was being written when the agent died (an open row, or a file
    newer than anything indexed whose row a power cut took with it), index it, and open an ``agent
    crashed`` gap from its end. Returns the repaired segments."""
    repaired: list[Segment] = []
    open_rows = {path: camera for camera, path, *_ in index.open_segments()}
    known = index.known_paths()
    for camera, files in camera_files(root).items():
        newest_known = max((p for p in files if p in known and p not in open_rows), default=None,
                           key=lambda p: start_from_name(p) or datetime.min.replace(tzinfo=UTC))  # fmt: skip
        newest_start = start_from_name(newest_known) if newest_known else None
        for path in files:
            start = start_from_name(path)
            if path in open_rows or (path not in known and (newest_start is None or (start and start > newest_start))):
                segment = segment_from_file(camera, path, index.last_sha256(camera))
                if segment is None:  # killed before its first whole fragment: nothing of it to keep
                    path.unlink(missing_ok=True)
                    index.delete_segment(path)
                    if not index.has_open_gap(camera):  # the crash is a gap all the same
                        index.add_gap(camera, index.camera_totals(camera)[1] or start or now_utc(), None,
                                      GapReason.AGENT_CRASHED)  # fmt: skip
                    continue
                index.close_segment(segment)
                repaired.append(segment)
                log.warning("camera %s: repaired %s after a crash (%.1f s kept)", camera, path,
                            (segment.end - segment.start).total_seconds())  # fmt: skip
                if not index.has_open_gap(camera):
                    index.add_gap(camera, segment.end, None, GapReason.AGENT_CRASHED)
    for path in open_rows:
        if not path.exists():
            index.delete_segment(path)
    return repaired


@dataclass(frozen=True)
class Reindexed:
    segments: int
    gaps: int  # restored from their journal (added: those already in the index are not counted)
    bookmarks: int


def reindex(index: RecordingIndex, root: Path) -> Reindexed:
    """Rebuild segments from the files alone, the locks from their copy and the gaps and bookmarks from their
    journals; returns how many of each were indexed."""
    index.clear()
    count = 0
    for camera, files in camera_files(root).items():
        prev: str | None = None
        for path in files:
            segment = segment_from_file(camera, path, prev)
            if segment is None:
                continue
            index.close_segment(segment)
            prev = segment.sha256
            count += 1
    index.restore_locks()
    return Reindexed(count, index.restore_gaps(), index.restore_bookmarks())
