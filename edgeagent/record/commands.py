"""``edgeagent recordings list|reindex -c FILE``: for a commissioning engineer on the box.

Only argparse at import: ``edgeagent verify`` runs on machines without PyAV, and it builds the same parser.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgeagent.record.settings import RecordingSection

INDEX_NAME = "index.sqlite3"  # the service's (edgeagent.record.service.INDEX_NAME), without importing PyAV

EXIT_CONFIG = 2
EVER = (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))  # a range without bounds


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _settings(args: argparse.Namespace) -> RecordingSection | None:
    from edgeagent.config import ConfigError, load_config

    try:
        config = load_config(Path(args.config))
    except ConfigError as exc:
        for line in exc.lines:
            print(f"config error: {args.config}: {line}", file=sys.stderr)
        return None
    if config.recording is None:
        print(f"config error: {args.config}: recording: no recording section, nothing is recorded", file=sys.stderr)
        return None
    return config.recording


def cmd_list(args: argparse.Namespace) -> int:
    from edgeagent.record.growing import readable, totals_with_growing, with_growing
    from edgeagent.record.index import RecordingIndex
    from edgeagent.record.open_segment import find_open

    settings = _settings(args)
    if settings is None:
        return EXIT_CONFIG
    index = RecordingIndex(settings.dir / INDEX_NAME)
    cameras = [args.camera] if args.camera else index.cameras()
    for camera in cameras:
        # The segment the agent is writing, from its file, before the index (see edgeagent.record.growing).
        found = find_open(index, settings.dir, camera, digest=False)  # no hash shown
        growing = found.segment
        if found.note:
            print(f"recordings list: note: {found.note}", file=sys.stderr)
        oldest, newest, size = totals_with_growing(*index.camera_totals(camera), growing)
        print(f"{camera}: {size / 1e6:.1f} MB" + (f", {_iso(oldest)} .. {_iso(newest)}" if oldest and newest else ""))
        spans, open_span = with_growing(index.spans(camera), growing, EVER[0], EVER[1])
        for number, (start, end) in enumerate(spans):
            print(f"  recorded {_iso(start)} .. {_iso(end)}  ({(end - start).total_seconds():.1f} s)"
                  + ("  still being recorded" if number == open_span else ""))  # fmt: skip
        for gap in index.gaps(camera):
            print(f"  gap      {_iso(gap.start)} .. {_iso(gap.end)}  {gap.reason.value}")
        for lock in index.locks(camera):
            print(f"  lock     {_iso(lock.start)} .. {_iso(lock.end)}  {lock.id} {lock.reason}")
        if args.segments:
            for segment in readable(index.segments(camera), growing):
                digest = "open (whole fragments)" if segment.open else segment.sha256[:16]
                print(f"  segment  {_iso(segment.start)} .. {_iso(segment.end)}  {segment.bytes} B  "
                      f"{digest}  {segment.path}")  # fmt: skip
    index.close()
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    """Rebuild the index from the files (run it while the agent is stopped)."""
    from edgeagent.record.index import RecordingIndex
    from edgeagent.record.repair import reindex

    settings = _settings(args)
    if settings is None:
        return EXIT_CONFIG
    index = RecordingIndex(settings.dir / INDEX_NAME)
    done = reindex(index, settings.dir)
    cameras = index.cameras()
    index.close()
    print(f"ok: {done.segments} segments of {len(cameras)} cameras indexed from {settings.dir}; "
          f"{done.gaps} gaps and {done.bookmarks} bookmarks restored from their journals")  # fmt: skip
    return 0


def add_recordings_commands(commands: Any) -> Any:
    """Adds ``recordings`` to the CLI; returns its sub-commands so others (export) can join."""
    recordings = commands.add_parser("recordings", help="list, export or reindex the recordings on this box")
    sub = recordings.add_subparsers(dest="recordings_command", required=True)
    listing = sub.add_parser("list", help="recorded spans, gaps and locks per camera")
    listing.add_argument("-c", "--config", required=True, help="YAML configuration file")
    listing.add_argument("--camera", help="only this camera")
    listing.add_argument("--segments", action="store_true", help="also every segment file")
    listing.set_defaults(handler=cmd_list)
    rebuild = sub.add_parser("reindex", help="rebuild the index from the segment files (agent stopped)")
    rebuild.add_argument("-c", "--config", required=True, help="YAML configuration file")
    rebuild.set_defaults(handler=cmd_reindex)
    return sub
