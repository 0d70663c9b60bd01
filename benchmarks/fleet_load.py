"""A fleet on a three-node NATS JetStream cluster (its MQTT listener), on this machine: how many cabinets
it holds with message delay p99 under 1 s.

Each simulated cabinet is one MQTT 3.1.1 connection, with the agent's last will, that sends what a real
agent with four cameras sends at the default intervals, at the rates measured by
``benchmarks/fleet_traffic.py`` (read from benchmarks/fleet_traffic.json): availability and four camera
statuses (retained, qos 1) on connect; agent health, four camera healths and four snapshots every 10 s,
with random phases; and its retained states once more every ``mqtt.refresh_s`` (300 s), at a random
phase. Snapshots are retained (``mqtt.snapshot_retain: true``, the default) or, in the ``plain``
variant, live only at qos 0, their retained topic cleared once on connect (``snapshot_retain: false``).
The centre is one subscriber to ``edgeagent/#`` on each node (so every message crosses the cluster).
Every payload starts with its send time; delay = arrival - send.

The fleet grows in steps; each step is held for a window, and the step passes when p99 < 1 s and under
1 % of the messages were lost; the ramp of a variant stops at the first step that fails. Each variant
runs on a fresh cluster. Publishers and the centre are plain asyncio sockets (a few hundred lines of
MQTT are cheaper than a paho thread per cabinet), in two processes beside the three nodes.

    python -m benchmarks.fleet_load [--steps 50,100,200,...] [--window 30] [--snapshots plain]
    python -m benchmarks --only fleet     # both variants, the default ramp, into RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import random
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.figures import percentile  # noqa: E402
from benchmarks.settings import Settings  # noqa: E402
from tests.support.nats import NATS_SERVER, NatsCluster  # noqa: E402

TRAFFIC = Path(__file__).resolve().parent / "fleet_traffic.json"
P99_TARGET_S = 1.0
LOSS_LIMIT = 0.01
GRACE_S = 3.0  # after a window, for its last messages to arrive
CAMERAS = 4
# Measured by benchmarks/fleet_traffic.py (4 cameras, defaults), used when no fleet_traffic.json exists.
DEFAULT_SIZES = {"agent_health": 300, "camera_health": 600, "snapshot": 22500}
INTERVAL_S = 10.0
REFRESH_S = 300.0  # mqtt.refresh_s, the agent's default
VARIANTS = ("retained", "plain")
STATE_TOPICS = (b"/availability", b"/status")
STAMP = struct.Struct("!d")


# -- MQTT 3.1.1, the few packets needed ----------------------------------------------------------------


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def _text(value: bytes) -> bytes:
    return len(value).to_bytes(2, "big") + value


def connect_packet(client_id: str, user: str, password: str, will_topic: str, keepalive: int = 30) -> bytes:
    flags = 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02  # user, password, will retained qos 1, clean session
    body = _text(b"MQTT") + bytes([4, flags]) + keepalive.to_bytes(2, "big")
    body += _text(client_id.encode()) + _text(will_topic.encode()) + _text(b"offline")
    body += _text(user.encode()) + _text(password.encode())
    return b"\x10" + _length(len(body)) + body


def publish_packet(topic: str, payload: bytes, retain: bool = False, qos: int = 0, packet_id: int = 1) -> bytes:
    body = _text(topic.encode()) + (packet_id.to_bytes(2, "big") if qos else b"") + payload
    return bytes([0x30 | qos << 1 | int(retain)]) + _length(len(body)) + body


def subscribe_packet(topic_filter: str, packet_id: int = 1) -> bytes:
    body = packet_id.to_bytes(2, "big") + _text(topic_filter.encode()) + b"\x00"
    return b"\x82" + _length(len(body)) + body


async def read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first = (await reader.readexactly(1))[0]
    length, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            break
    return first, await reader.readexactly(length)


async def open_mqtt(port: int, client_id: str, user: str, password: str, will: str) -> tuple[Any, Any]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
    writer.write(connect_packet(client_id, user, password, will))
    kind, body = await asyncio.wait_for(read_packet(reader), 15)
    if kind >> 4 != 2 or body[1] != 0:
        raise ConnectionError(f"CONNACK refused: {body!r}")
    return reader, writer


# -- cabinets (a publisher process) ---------------------------------------------------------------------


@dataclass
class Plan:
    ports: list[int]
    user: str
    password: str
    sizes: dict[str, int]
    interval_s: float = INTERVAL_S  # shorter in --quick only, so a short window sees traffic
    retain_snapshots: bool = True  # mqtt.snapshot_retain; False: the variant with plain snapshots
    refresh_s: float = REFRESH_S  # 0: no refresh


def payload(size: int, stamp: float | None = None) -> bytes:
    return STAMP.pack(time.time() if stamp is None else stamp) + b"x" * max(0, size - STAMP.size)


async def cabinet(index: int, plan: Plan, counts: dict[str, Any], ready: asyncio.Event) -> None:
    base = f"edgeagent/cab-{index:05d}"
    port = plan.ports[index % len(plan.ports)]
    reader, writer = await open_mqtt(port, f"edgeagent-cab-{index:05d}", plan.user, plan.password,
                                     f"{base}/availability")  # fmt: skip
    drain = asyncio.ensure_future(_drain(reader))
    refresh: asyncio.Future[None] | None = None
    try:
        counts["state"] += _retained_states(writer, base, plan)
        ready.set()
        if plan.refresh_s > 0:
            refresh = asyncio.ensure_future(_refresh(writer, base, plan, counts))
        await asyncio.sleep(random.uniform(0, plan.interval_s))  # phases spread over the interval
        next_at = time.monotonic()
        sizes = plan.sizes
        while True:
            stamp = time.time()  # one per round: the centre counts a window's messages by it
            writer.write(publish_packet(f"{base}/health", payload(sizes["agent_health"], stamp)))
            for camera in range(CAMERAS):
                topic = f"{base}/cameras/cam{camera}"
                writer.write(publish_packet(f"{topic}/health", payload(sizes["camera_health"], stamp)))
                snapshot = payload(sizes["snapshot"], stamp)
                writer.write(publish_packet(f"{topic}/snapshot", snapshot, plan.retain_snapshots))
            counts["periodic"] += 1 + 2 * CAMERAS
            counts["rounds"].append(stamp)
            await writer.drain()
            next_at += plan.interval_s
            late = time.monotonic() - next_at + plan.interval_s
            counts["late_ms"] = max(counts["late_ms"], int(late * 1000))
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    finally:
        drain.cancel()
        if refresh is not None:
            refresh.cancel()
        writer.close()


def _retained_states(writer: Any, base: str, plan: Plan) -> int:
    """What the agent keeps retained, as it publishes it on connect and on every refresh: availability and
    the statuses (qos 1); with snapshots not retained, their cleared topics (empty, qos 0) too."""
    writer.write(publish_packet(f"{base}/availability", payload(6), retain=True, qos=1, packet_id=1))
    for camera in range(CAMERAS):
        writer.write(publish_packet(f"{base}/cameras/cam{camera}/status", payload(6), True, 1, 2 + camera))
        if not plan.retain_snapshots:
            writer.write(publish_packet(f"{base}/cameras/cam{camera}/snapshot", b"", retain=True))
    return 1 + CAMERAS * (1 if plan.retain_snapshots else 2)


async def _refresh(writer: Any, base: str, plan: Plan, counts: dict[str, Any]) -> None:
    await asyncio.sleep(random.uniform(0, plan.refresh_s))  # each agent's refresh runs from its own connect
    while True:
        counts["refreshed"] += _retained_states(writer, base, plan)
        await asyncio.sleep(plan.refresh_s)


async def _drain(reader: asyncio.StreamReader) -> None:
    while True:
        await read_packet(reader)  # PUBACKs, PINGRESPs: read and dropped


async def _keepalive(writer: Any) -> None:
    while True:  # PINGREQ well inside the 30 s keepalive: a silent subscriber is dropped at 45 s
        await asyncio.sleep(10)
        writer.write(b"\xc0\x00")


def publisher_main(plan: Plan, commands: Any, reports: Any) -> None:
    asyncio.run(_publisher(plan, commands, reports))


async def _publisher(plan: Plan, commands: Any, reports: Any) -> None:
    counts: dict[str, Any] = {"state": 0, "periodic": 0, "refreshed": 0, "late_ms": 0, "failed": 0, "rounds": []}
    tasks: list[asyncio.Task[None]] = []
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, commands.recv)
        if command[0] == "stop":
            break
        if command[0] == "report":
            reports.send(_report(counts, len(tasks)))
            continue
        if command[0] == "sent":  # messages sent with a stamp in [from, to)
            rounds = counts["rounds"]
            reports.send(sum(1 for stamp in rounds if command[1] <= stamp < command[2]) * (1 + 2 * CAMERAS))
            counts["rounds"] = [stamp for stamp in rounds if stamp >= command[1]]
            continue
        target = command[1]

        async def start(index: int, gate: asyncio.Semaphore) -> None:
            ready = asyncio.Event()
            async with gate:
                task = asyncio.ensure_future(cabinet(index, plan, counts, ready))
                task.add_done_callback(lambda t: counts.__setitem__("failed", counts["failed"] + 1))
                tasks.append(task)
                await asyncio.wait([task, asyncio.ensure_future(ready.wait())], return_when=asyncio.FIRST_COMPLETED)

        gate = asyncio.Semaphore(20)  # connects at once: a NATS MQTT connect is a JetStream write
        await asyncio.gather(*(start(index, gate) for index in range(len(tasks), target)))
        reports.send(_report(counts, len(tasks)))
    for task in tasks:
        task.cancel()


def _report(counts: dict[str, Any], started: int) -> dict[str, Any]:
    report = {key: value for key, value in counts.items() if key != "rounds"}
    report["cabinets"] = started - counts["failed"]
    return report


# -- the centre (the main process) ------------------------------------------------------------------------


class Centre:
    def __init__(self) -> None:
        self.seen: list[tuple[float, float]] = []  # (send stamp, delay) of every live message
        self.subscribed: list[asyncio.Event] = []

    async def subscribe(self, port: int, user: str, password: str, name: str) -> None:
        subscribed = asyncio.Event()
        self.subscribed.append(subscribed)
        reader, writer = await open_mqtt(port, f"centre-{name}", user, password, f"centre/{name}")
        writer.write(subscribe_packet("edgeagent/#"))
        while (await read_packet(reader))[0] >> 4 != 9:  # until the SUBACK
            pass
        subscribed.set()
        pings = asyncio.ensure_future(_keepalive(writer))
        try:
            await self._receive(reader, writer)
        finally:
            pings.cancel()

    async def _receive(self, reader: asyncio.StreamReader, writer: Any) -> None:
        while True:
            kind, body = await read_packet(reader)
            if kind >> 4 != 3:
                continue
            now = time.time()
            topic_length = int.from_bytes(body[:2], "big")
            start = 2 + topic_length + (2 if kind & 0x06 else 0)
            if kind & 0x06:  # qos 1: acknowledge
                writer.write(b"\x40\x02" + body[2 + topic_length : start])
            if kind & 0x01:
                continue  # retained, sent at subscribe time: not a live delay
            if body[2 : 2 + topic_length].endswith(STATE_TOPICS) or len(body) - start < STAMP.size:
                continue  # the retained states (on connect, refreshes): not counted as sent either
            stamp = STAMP.unpack_from(body, start)[0]
            self.seen.append((stamp, now - stamp))

    def window(self, start: float, end: float) -> list[float]:
        """Delays of the messages sent in [start, end), sorted; older records dropped."""
        delays = sorted(delay for stamp, delay in self.seen if start <= stamp < end)
        self.seen = [(stamp, delay) for stamp, delay in self.seen if stamp >= end]
        return delays


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


async def ramp(
    settings: Settings,
    steps: list[int],
    window_s: float,
    sizes: dict[str, int],
    interval_s: float,
    retain_snapshots: bool = True,
    refresh_s: float = REFRESH_S,
) -> list[dict[str, Any]]:
    settle_s = interval_s + 5.0
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fleet-load-") as tmp, NatsCluster(Path(tmp) / "nats") as cluster:
        ports = [node.port for node in cluster.nodes]
        plan = Plan(ports, cluster.username, cluster.password, sizes, interval_s, retain_snapshots, refresh_s)
        centre = Centre()
        subscribers = [asyncio.ensure_future(centre.subscribe(port, plan.user, plan.password, f"n{i}"))
                       for i, port in enumerate(ports)]  # fmt: skip
        while len(centre.subscribed) < len(ports) or not all(event.is_set() for event in centre.subscribed):
            if any(task.done() for task in subscribers):
                raise RuntimeError("a centre subscriber could not subscribe")
            await asyncio.sleep(0.1)
        ours, theirs = mp.Pipe()
        answers_in, answers_out = mp.Pipe(duplex=False)
        worker = mp.get_context("spawn").Process(target=publisher_main, args=(plan, theirs, answers_out), daemon=True)
        worker.start()
        nodes = [psutil.Process(node.proc.pid) for node in cluster.nodes if node.proc is not None]
        loop = asyncio.get_running_loop()
        try:
            for target in steps:
                ours.send(("grow", target))
                grown = await loop.run_in_executor(None, answers_in.recv)
                # Settle: the new cabinets' connects and first round (a new retained topic each) are a burst
                # a fleet in service does not see; NATS was seen to stall other traffic for 1-5 s meanwhile.
                await asyncio.sleep(settle_s)
                cpu_before = (_cpu(nodes), _cpu([psutil.Process(worker.pid)]), _cpu([psutil.Process()]))
                window_from = time.time()
                started = time.monotonic()
                await asyncio.sleep(window_s)
                elapsed = time.monotonic() - started
                window_to = time.time()
                cpu_after = (_cpu(nodes), _cpu([psutil.Process(worker.pid)]), _cpu([psutil.Process()]))
                await asyncio.sleep(GRACE_S)  # late messages of the window still count (and show in p99)
                ours.send(("report",))
                after = await loop.run_in_executor(None, answers_in.recv)
                ours.send(("sent", window_from, window_to))
                sent = await loop.run_in_executor(None, answers_in.recv)
                expected = sent * len(ports)  # each subscriber gets every message
                delays = centre.window(window_from, window_to)
                got = len(delays)
                p99 = percentile(delays, 99)
                loss = max(0.0, 1 - got / expected) if expected else 1.0
                row = {
                    "snapshots": "retained" if retain_snapshots else "plain",
                    "cabinets": after["cabinets"], "target": target, "failed_connects": after["failed"],
                    "messages_in_per_s": sent / elapsed, "messages_out_per_s": got / elapsed,
                    "mbytes_in_per_s": sent / (1 + 2 * CAMERAS) * (sizes["agent_health"] + CAMERAS * (
                        sizes["camera_health"] + sizes["snapshot"])) / elapsed / 1e6,
                    "p50_s": percentile(delays, 50), "p99_s": p99, "max_s": delays[-1] if delays else None,
                    "loss": loss, "publisher_late_ms": after["late_ms"], "refreshed_total": after["refreshed"],
                    "cpu_nats_pct": (cpu_after[0] - cpu_before[0]) / elapsed * 100,
                    "cpu_publisher_pct": (cpu_after[1] - cpu_before[1]) / elapsed * 100,
                    "cpu_centre_pct": (cpu_after[2] - cpu_before[2]) / elapsed * 100,
                    "held": bool(p99 is not None and p99 < P99_TARGET_S and loss < LOSS_LIMIT
                                 and after["cabinets"] >= target),
                }  # fmt: skip
                del grown
                rows.append(row)
                settings.log(
                    f"fleet ({row['snapshots']} snapshots): {row['cabinets']} cabinets, "
                    f"{row['messages_in_per_s']:.0f} msg/s in, p99 {(p99 or 0) * 1000:.0f} ms, "
                    f"loss {loss * 100:.2f} %, NATS CPU {row['cpu_nats_pct']:.0f} %"
                )
                if not row["held"]:
                    break
        finally:
            ours.send(("stop",))
            worker.join(10)
            if worker.is_alive():
                worker.kill()
            for task in subscribers:
                task.cancel()
    return rows


def measured_sizes() -> tuple[dict[str, int], str]:
    if TRAFFIC.exists():
        kinds = json.loads(TRAFFIC.read_text())["kinds"]
        return {kind: int(kinds[kind]["mean_payload_bytes"]) for kind in DEFAULT_SIZES}, str(TRAFFIC.name)
    return dict(DEFAULT_SIZES), "defaults in fleet_load.py"


def run(
    settings: Settings,
    steps: list[int] | None = None,
    window_s: float | None = None,
    variants: tuple[str, ...] | None = None,
    refresh_s: float = REFRESH_S,
) -> dict[str, Any]:
    sizes, source = measured_sizes()
    steps = steps or ([3] if settings.quick else [50, 100, 200, 400, 700, 1000, 1500, 2000, 3000, 4000, 5000])
    window = window_s or (2.0 if settings.quick else 30.0)
    variants = variants or (("retained",) if settings.quick else VARIANTS)
    interval_s = 1.0 if settings.quick else INTERVAL_S
    rows: list[dict[str, Any]] = []
    held: dict[str, int] = {}
    for variant in variants:  # each on a fresh cluster: retained snapshots fill JetStream
        ran = asyncio.run(ramp(settings, steps, window, sizes, interval_s, variant == "retained", refresh_s))
        held[variant] = max((row["cabinets"] for row in ran if row["held"]), default=0)
        rows += ran
    return {
        "name": "fleet",
        "title": "7. A fleet on a three-node NATS JetStream cluster on this machine",
        "target": f"cabinets held with message delay p99 < {P99_TARGET_S:g} s and loss < {LOSS_LIMIT:.0%}",
        "met": max(held.values()) > 0,
        "data": {"held": held, "rows": rows, "sizes": sizes, "refresh_s": refresh_s},
        "tables": [{
            "columns": ["snapshots", "cabinets", "msg/s in", "msg/s out (3 subscribers)", "MB/s in", "p50 ms",
                        "p99 ms", "max ms", "loss %", "NATS CPU % (3 nodes)", "publisher CPU %", "centre CPU %",
                        "held"],
            "rows": [[row["snapshots"], row["cabinets"], f"{row['messages_in_per_s']:.0f}",
                      f"{row['messages_out_per_s']:.0f}", f"{row['mbytes_in_per_s']:.2f}",
                      f"{(row['p50_s'] or 0) * 1000:.0f}", f"{(row['p99_s'] or 0) * 1000:.0f}",
                      f"{(row['max_s'] or 0) * 1000:.0f}", f"{row['loss'] * 100:.2f}", f"{row['cpu_nats_pct']:.0f}",
                      f"{row['cpu_publisher_pct']:.0f}", f"{row['cpu_centre_pct']:.0f}",
                      "yes" if row["held"] else "no"] for row in rows],
        }],  # fmt: skip
        "notes": [
            "held: " + ", ".join(f"snapshots {variant}: {count} cabinets" for variant, count in held.items())
            + f", simulated cabinets of {CAMERAS} cameras (payload sizes from {source}: {sizes})",
            "retained: snapshots as the agent sends them by default (mqtt.snapshot_retain: true); plain: live only, "
            "qos 0 (snapshot_retain: false); retained states published again every "
            f"{refresh_s:g} s (mqtt.refresh_s)" if refresh_s else "no refresh (mqtt.refresh_s: 0)",
            f"each step held for {window:g} s, after the connects and one round more; a variant's ramp stops at its "
            "first failing step; the centre is one subscriber per node",
            "three nodes, the load generator and the centre share this machine's cores: see docs/fleet.md",
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet_load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--steps", default=None, help="comma-separated fleet sizes")
    parser.add_argument("--window", type=float, default=None, help="seconds each step is held")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    parser.add_argument("--snapshots", choices=[*VARIANTS, "both"], default="both",
                        help="retained (mqtt.snapshot_retain: true, the default), plain (false), or both in turn")
    parser.add_argument("--refresh-s", type=float, default=REFRESH_S, help="mqtt.refresh_s of the cabinets; 0: none")
    parser.add_argument("--record", action="store_true",
                        help="store the result in benchmarks/results.json and rewrite benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    steps = [int(step) for step in args.steps.split(",")] if args.steps else None
    variants = VARIANTS if args.snapshots == "both" else (args.snapshots,)
    settings = Settings(quick=args.quick)
    result = run(settings, steps, args.window, variants, args.refresh_s)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    if args.record:
        given = argv if argv is not None else sys.argv[1:]
        _record(result, settings, ["python", "-m", "benchmarks.fleet_load", *given])
    print(text)
    return 0


def _record(result: dict[str, Any], settings: Settings, argv: list[str]) -> None:
    """As ``python -m benchmarks --only fleet`` stores a run, with this run's steps and window; the report's
    machine table stays the one the other benchmarks ran on, and this run's machine goes into its notes."""
    from benchmarks import report
    from benchmarks.machine import machine_info
    from benchmarks.settings import BENCH, WORK

    out = WORK / "quick" if settings.quick else BENCH  # as python -m benchmarks: tiny runs apart
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    earlier = report.load(path).get("machine") or {}
    machine = machine_info()
    result["notes"].append(run_machine_note(machine))
    store = report.merge(path, [result], machine, settings.commands, argv, settings.quick)
    if earlier:
        store["machine"] = earlier
        path.write_text(json.dumps(store, indent=1, default=str))
    plot = out / "results.png"
    report.write_markdown(store, out / "RESULTS.md", plot.name if report.write_plot(store, plot) else None)


def run_machine_note(machine: dict[str, str]) -> str:
    version = subprocess.run([NATS_SERVER, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    load = ", ".join(f"{value:.1f}" for value in psutil.getloadavg())
    return (f"this run's machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory']}, {machine['os']}; "
            f"{version or 'nats-server'}; load average {load} at the end")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
