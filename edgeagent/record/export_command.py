"""``edgeagent recordings export -c FILE --camera CAM --start T --end T [-o OUT]``: a signed export
written on the box itself, the same zip as ``GET /recordings/<cam>/export.zip``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

EXIT_CONFIG = 2
DEFAULT_MAX_SECONDS = 3600.0  # ClipSettings' default; not imported, so the CLI starts without PyAV


def add_export_command(sub: Any) -> None:
    """Joins ``recordings`` (``sub`` is its sub-command parser set)."""
    export = sub.add_parser("export", help="write a signed export (clip, manifest, signature) of a time range")
    export.add_argument("-c", "--config", required=True, help="YAML configuration file")
    export.add_argument("--camera", required=True)
    export.add_argument("--start", required=True, help="RFC 3339, e.g. 2026-12-01T08:00:00Z")
    export.add_argument("--end", required=True, help="RFC 3339")
    export.add_argument("-o", "--output", help="the zip to write (default: <agent>-<camera>-<start>.zip here)")
    export.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                        help="longest range accepted (default: %(default)g)")
    export.set_defaults(handler=cmd_export)


def _fail(line: str, code: int = 1) -> int:
    print(f"recordings export: {line}", file=sys.stderr)
    return code


def cmd_export(args: argparse.Namespace) -> int:
    from edgeagent.config import ConfigError, load_config
    from edgeagent.record.clip import ClipError, ClipSettings, plan_clip
    from edgeagent.record.export import write_export
    from edgeagent.record.growing import not_recorded_yet, readable
    from edgeagent.record.open_segment import find_open
    from edgeagent.record.signing import SigningKeyError, fingerprint, load_or_create_key
    from edgeagent.record.times import TimeRangeError, parse_range

    try:
        from edgeagent.record.index import RecordingIndex  # type: ignore[import-not-found, unused-ignore]
        from edgeagent.record.service import INDEX_NAME  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return _fail("this build has no recording index", EXIT_CONFIG)
    try:
        config = load_config(Path(args.config))
    except ConfigError as exc:
        for line in exc.lines:
            print(f"config error: {args.config}: {line}", file=sys.stderr)
        return EXIT_CONFIG
    recording = getattr(config, "recording", None)
    if recording is None:
        return _fail(f"{args.config}: no recording section, nothing is recorded", EXIT_CONFIG)
    try:
        start, end = parse_range(args.start, args.end, args.max_seconds)
        key = load_or_create_key(config.agent.state_dir)
        index = RecordingIndex(recording.dir / INDEX_NAME)
        try:
            # The segment the agent is writing, from its file (before the index: see record.growing).
            found = find_open(index, recording.dir, args.camera)
            if found.note:
                print(f"recordings export: note: {found.note}", file=sys.stderr)
            closed = index.segments(args.camera, start, end)
            growing = found.segment
            if (why := not_recorded_yet(closed, growing, start)) is not None:
                return _fail(why)
            segments = readable(closed, growing, start, end)
            plan = plan_clip(args.camera, segments, start, end, ClipSettings(max_seconds=args.max_seconds))
            marks = index.bookmarks(args.camera, plan.start, plan.end)  # signed into the manifest
        finally:
            index.close()
        output = Path(args.output or f"{config.agent.id}-{args.camera}-{plan.start:%Y%m%dT%H%M%SZ}.zip")
        partial = output.with_name(output.name + ".partial")
        try:
            with partial.open("wb") as file:
                result = write_export(plan, file, key, config.agent.id, bookmarks=marks)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, output)
        finally:
            partial.unlink(missing_ok=True)
    except (TimeRangeError, ClipError, SigningKeyError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    clip = result.manifest["clip"]
    # An open last segment: the one being written (or, with the agent stopped, the torn one awaiting repair).
    still_open = ", the last still open (its whole fragments only)" if plan.segments[-1].open else ""
    print(f"ok: wrote {output} ({output.stat().st_size} bytes): camera {args.camera}, "
          f"{result.manifest['actual']['start']} to {result.manifest['actual']['end']}, {len(plan.segments)} "
          f"segment(s){still_open}, clip SHA-256 {clip['sha256'][:16]}..., signed by {fingerprint(key.public_key())}")
    return 0
