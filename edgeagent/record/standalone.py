"""Record cameras without the rest of the agent: ``python -m edgeagent.record.standalone --dir D name=URL``.

For commissioning a disk, for the benchmarks and for the crash tests (a process that can be killed).
Prints ``RECORDING`` once the recorders run; stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from edgeagent import logs
from edgeagent.camera.hub import CameraHub
from edgeagent.camera.source import CameraSource
from edgeagent.config import CameraSection
from edgeagent.record.service import RecordingService
from edgeagent.record.settings import RecordingSection


async def record(
    cameras: dict[str, str], settings: RecordingSection, seconds: float | None, ingest_only: bool = False
) -> None:
    hubs = {name: CameraHub(name) for name in cameras}
    sources = [CameraSource(name, CameraSection(url=url), None, hubs[name]) for name, url in cameras.items()]
    service = None if ingest_only else RecordingService(settings, hubs)
    if service is not None:
        await service.start()
    for source in sources:
        source.start()
    print("RECORDING", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass
    if service is not None:
        await service.stop()
    for source in sources:
        await source.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--segment-s", type=float, default=60)
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--ingest-only", action="store_true", help="read the cameras, record nothing (a baseline)")
    parser.add_argument("cameras", nargs="+", help="NAME=rtsp://...")
    args = parser.parse_args(argv)
    logs.setup(args.log_level)
    cameras = dict(item.split("=", 1) for item in args.cameras)
    settings = RecordingSection(dir=args.dir, segment_s=args.segment_s, min_free="0%")
    asyncio.run(record(cameras, settings, args.seconds, args.ingest_only))
    return 0


if __name__ == "__main__":
    sys.exit(main())
