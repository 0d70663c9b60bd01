"""Offload throughput: the offloader (queue, pacer, SHA-256 sent and checked after upload) uploading
recorded segments to a local SeaweedFS cluster (master, two volume servers, replication 001, filer and
S3 gateway: tests/support/seaweed.py), uncapped and under caps, beside the same bytes sent by plain
aiobotocore ``put_object`` calls (the reference: no queue, no pacing, no verification).

    python -m benchmarks.offload [--mb 96] [--segment-mb 30] [--caps 2000,8000]

The segments are 30 MB each by default (a 4 Mbit/s camera's 60 s segment), so every one goes up as a
multipart upload of 8 MiB parts. Everything runs on this machine over 127.0.0.1: uncapped, the cluster's
own CPU is the limit, not a network. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from edgeagent.offload.service import Offloader
from edgeagent.offload.settings import OffloadSection
from edgeagent.record.index import RecordingIndex
from edgeagent.record.model import Segment
from tests.support.seaweed import Seaweed

BUCKET = "bench-recordings"
CAPPED_FILES = 4
CAPPED_FILE_S = 5.0


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_segments(root: Path, count: int, size: int) -> RecordingIndex:
    index = RecordingIndex(root / "index.sqlite3")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    for number in range(count):
        path = root / "north" / f"{start:%Y-%m-%d}" / f"north-{number:04d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(size)
        path.write_bytes(data)
        end = start + timedelta(seconds=60)
        index.close_segment(Segment("north", path, start, end, size, "h264", 1920, 1080,
                                    hashlib.sha256(data).hexdigest(), index.last_sha256("north")))  # fmt: skip
        start = end
    return index


async def offload_once(cluster: Seaweed, root: Path, prefix: str, total: int, max_kbps: float | None) -> dict[str, Any]:
    section = OffloadSection.model_validate({
        "endpoint": cluster.endpoint, "bucket": BUCKET, "access_key_file": "x", "secret_key_file": "x",
        "prefix": prefix, "segments": True, "max_kbps": max_kbps, "scan_s": 0.5,
    }).with_keys(SecretStr(cluster.access_key), SecretStr(cluster.secret_key))  # fmt: skip
    # A fresh queue for each run: forget what an earlier run uploaded.
    index = RecordingIndex(root / "index.sqlite3")
    index._db.execute("DELETE FROM offload_queue")  # the benchmark's own index, reset between runs
    index.close()
    offloader = Offloader(section, root / "index.sqlite3", root, "bench")
    cpu, started = _cpu_s(), time.monotonic()
    offloader.start()
    try:
        while offloader.uploaded_bytes < total:
            if offloader.failures:
                raise RuntimeError(offloader.last_error)
            await asyncio.sleep(0.05)
    finally:
        elapsed = time.monotonic() - started
        await offloader.stop()
    kbps = total * 8 / 1000 / elapsed
    return {"cap_kbps": max_kbps, "seconds": round(elapsed, 2), "kbps": round(kbps),
            "MB_per_s": round(total / elapsed / 1e6, 2),
            "share_of_cap": None if not max_kbps else round(kbps / max_kbps, 3),
            "agent_cpu_s_per_GB": round((_cpu_s() - cpu) / (total / 1e9), 1)}  # fmt: skip


async def reference(cluster: Seaweed, root: Path, total: int) -> dict[str, Any]:
    """Plain ``put_object`` of every file, one after the other, read in a thread: no pacing, no checks."""
    files = sorted(await asyncio.to_thread(lambda: list(root.glob("north/*/*.mp4"))))
    cpu, started = _cpu_s(), time.monotonic()
    async with cluster.client() as s3:
        for path in files:
            data = await asyncio.to_thread(path.read_bytes)
            await s3.put_object(Bucket=BUCKET, Key=f"reference/{path.name}", Body=data)
    elapsed = time.monotonic() - started
    return {"seconds": round(elapsed, 2), "kbps": round(total * 8 / 1000 / elapsed),
            "MB_per_s": round(total / elapsed / 1e6, 2),
            "agent_cpu_s_per_GB": round((_cpu_s() - cpu) / (total / 1e9), 1)}  # fmt: skip


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="offload-bench-"))
    cluster = Seaweed(work / "seaweed")
    try:
        cluster.start()
        async with cluster.client() as s3:
            await s3.create_bucket(Bucket=BUCKET)
        size = int(args.segment_mb * 1e6)
        count = max(1, int(args.mb / args.segment_mb))
        total = size * count
        root = work / "recordings"
        make_segments(root, count, size).close()
        result: dict[str, Any] = {"bytes": total, "segment_bytes": size, "files": count}
        result["reference_put_object"] = await reference(cluster, root, total)
        result["uncapped"] = await offload_once(cluster, root, "uncapped", total, None)
        result["capped"] = []
        for cap in args.caps:
            # a capped run moves 4 files of 5 s each at its cap: about 20 s, whatever the cap
            capped_size = min(size, int(cap * 1000 / 8 * CAPPED_FILE_S))
            capped_root = work / f"capped-{cap:g}"
            make_segments(capped_root, CAPPED_FILES, capped_size).close()
            run = await offload_once(cluster, capped_root, f"cap{cap:g}", CAPPED_FILES * capped_size, cap)
            result["capped"].append({**run, "bytes": CAPPED_FILES * capped_size, "file_bytes": capped_size})
        return result
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=96)
    parser.add_argument("--segment-mb", type=float, default=30)
    parser.add_argument("--caps", type=lambda text: [float(v) for v in text.split(",")], default=[2000.0, 8000.0])
    print(json.dumps(asyncio.run(main_async(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
