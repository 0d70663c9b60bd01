"""What an offline camera costs while the agent waits for it: CPU and packets per minute.

    python -m benchmarks.offline_camera [--seconds 60] [--cameras 1]

Runs the real RTSP source in-process against 127.0.0.1 in a fresh network namespace (it re-executes
itself under `unshare -n`, so the loopback counters hold only its own packets), in two cases:
- refused: nothing listens on the camera's port (a camera rebooting: SYN, RST);
- silent: the port drops every SYN (an address that stops answering: no RST, no ARP).
CPU is the process's own (user + system) over the run, packets are what `lo` transmitted; both are
given per minute and per camera. Not registered in `python -m benchmarks`: it needs no camera and runs
on its own in a couple of minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from edgeagent.camera.hub import CameraHub
from edgeagent.camera.source import CameraSource
from edgeagent.config import CameraSection


def lo_packets() -> int:
    """Packets `lo` transmitted, from /proc/net/dev: per network namespace (/sys/class/net is not, when
    sysfs was mounted in another namespace)."""
    for line in Path("/proc/net/dev").read_text().splitlines():
        name, _, counters = line.partition(":")
        if name.strip() == "lo":
            return int(counters.split()[9])  # transmit packets
    raise RuntimeError("no lo in /proc/net/dev")


def syn_dropping_listener() -> tuple[socket.socket, list[socket.socket], int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(2):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.2)
    return listener, fillers, port


async def measure(case: str, seconds: float, cameras: int) -> dict[str, float]:
    held: list[socket.socket] = []
    ports = []
    for _ in range(cameras):
        if case == "silent":
            listener, fillers, port = syn_dropping_listener()
            held += [listener, *fillers]
        else:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
        ports.append(port)
    sources = [
        CameraSource(f"cam{i}", CameraSection(url=f"rtsp://127.0.0.1:{port}/s"), None, CameraHub(f"cam{i}"))
        for i, port in enumerate(ports)
    ]
    for source in sources:
        source.start()
    await asyncio.sleep(3)  # past the first attempt: measure the waiting, not the start
    cpu0, packets0, t0 = time.process_time(), lo_packets(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, packets, wall = time.process_time() - cpu0, lo_packets() - packets0, time.monotonic() - t0
    for source in sources:
        await source.stop()
    for sock in held:
        sock.close()
    minutes = wall / 60
    return {
        "cpu_percent_of_a_core_per_camera": round(100 * cpu / wall / cameras, 4),
        "cpu_ms_per_minute_per_camera": round(1000 * cpu / minutes / cameras, 1),
        "packets_per_minute_per_camera": round(packets / minutes / cameras, 1),
        "waiting_for": sources[0].waiting_for or "",  # type: ignore[dict-item]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--cameras", type=int, default=1)
    parser.add_argument("--in-namespace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.in_namespace:
        unshare = shutil.which("unshare")
        if unshare is None:
            sys.exit("needs unshare(1) (util-linux) and root, for a network namespace of its own")
        command = [sys.executable, "-m", "benchmarks.offline_camera", "--in-namespace",
                   "--seconds", str(args.seconds), "--cameras", str(args.cameras)]
        sys.exit(subprocess.call([unshare, "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *command],
                                 env=os.environ))
    for case in ("refused", "silent"):
        print(case, asyncio.run(measure(case, args.seconds, args.cameras)), flush=True)


if __name__ == "__main__":
    main()
