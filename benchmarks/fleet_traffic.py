"""What one cabinet sends over MQTT, measured: a real agent with four cameras and the default intervals,
its traffic recorded by a watcher on the broker for a few minutes, per kind of topic.

    python -m benchmarks.fleet_traffic [--seconds 180] [--cameras 4] [--out benchmarks/fleet_traffic.json]

The figures feed docs/fleet.md and the fleet load test (benchmarks/fleet_load.py). Bytes are counted as
MQTT puts them on the wire (fixed header, remaining length, topic, packet id for qos 1, payload; a
PUBACK of 4 bytes back for each qos 1 message), without TCP/IP or TLS framing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.agent import AgentProcess, base_config  # noqa: E402
from tests.support.broker import Broker, make_tls_files  # noqa: E402
from tests.support.camera import Camera  # noqa: E402
from tests.support.mqtt import Message, MqttWatcher  # noqa: E402

OUT = Path(__file__).resolve().parent / "fleet_traffic.json"
KINDS = ("availability", "agent_health", "camera_status", "camera_health", "snapshot", "other")


def kind_of(topic: str) -> str:
    parts = topic.split("/")[2:]  # after <prefix>/<agent id>
    if parts == ["availability"]:
        return "availability"
    if parts == ["health"]:
        return "agent_health"
    if len(parts) == 3 and parts[0] == "cameras":
        return {"status": "camera_status", "health": "camera_health", "snapshot": "snapshot"}.get(parts[2], "other")
    return "other"


def wire_bytes(message: Message) -> int:
    """The PUBLISH packet's size (and the PUBACK that answers a qos 1 one)."""
    remaining = 2 + len(message.topic.encode()) + (2 if message.qos else 0) + len(message.payload)
    length_bytes = 1 if remaining < 128 else 2 if remaining < 16384 else 3 if remaining < 2097152 else 4
    return 1 + length_bytes + remaining + (4 if message.qos else 0)


def summarise(messages: list[Message], seconds: float, cameras: int) -> dict[str, Any]:
    by_kind: dict[str, list[Message]] = defaultdict(list)
    for message in messages:
        by_kind[kind_of(message.topic)].append(message)
    kinds = {}
    for kind in KINDS:
        found = by_kind.get(kind, [])
        payload = sum(len(m.payload) for m in found)
        kinds[kind] = {
            "messages": len(found),
            "messages_per_s": len(found) / seconds,
            "payload_bytes_per_s": payload / seconds,
            "wire_bytes_per_s": sum(wire_bytes(m) for m in found) / seconds,
            "mean_payload_bytes": payload / len(found) if found else 0,
            "max_payload_bytes": max((len(m.payload) for m in found), default=0),
        }
    total_messages = sum(k["messages_per_s"] for k in kinds.values())
    total_wire = sum(k["wire_bytes_per_s"] for k in kinds.values())
    return {
        "seconds": seconds,
        "cameras": cameras,
        "kinds": kinds,
        "cabinet": {"messages_per_s": total_messages, "wire_bytes_per_s": total_wire},
    }


def measure(seconds: float, cameras: int, width: int, fps: int, settle_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fleet-traffic-") as tmp:
        work = Path(tmp)
        broker = Broker(work / "mosquitto", make_tls_files(work / "tls")).start()
        sims = [Camera(width=width, height=width * 9 // 16, fps=fps, gop_s=2.0, log_path=work / f"cam{i}.log")
                for i in range(cameras)]  # fmt: skip
        agent = None
        watcher = MqttWatcher(broker, "edgeagent/#")
        try:
            for sim in sims:
                sim.start()
            # The defaults a cabinet runs with: health every 10 s, a 640-wide snapshot every 10 s, quality 80.
            config = base_config(work, broker, cameras={f"cam{i}": {"url": sim.url} for i, sim in enumerate(sims)},
                                 health_interval_s=10)  # fmt: skip
            agent = AgentProcess(config, work).start()
            watcher.start()
            for i in range(cameras):
                watcher.wait_for(f"edgeagent/cabinet-17/cameras/cam{i}/status", lambda m: m.payload == b"online", 30)
            time.sleep(settle_s)  # past the start's burst: every camera's first snapshot and state
            watcher.clear()
            started = time.monotonic()
            time.sleep(seconds)
            recorded = watcher.messages()
            elapsed = time.monotonic() - started
        finally:
            watcher.close()
            if agent is not None:
                agent.close()
            for sim in sims:
                sim.close()
            broker.kill()
    result = summarise(recorded, elapsed, cameras)
    result["setup"] = {"camera_width": width, "camera_fps": fps, "snapshot_width": 640, "snapshot_quality": 80,
                       "health_interval_s": 10, "snapshot_interval_s": 10, "pattern": "smpte bars + clock"}  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet_traffic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--width", type=int, default=640, help="camera picture width (16:9)")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    result = measure(args.seconds, args.cameras, args.width, args.fps, settle_s=15.0)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["cabinet"]), file=sys.stderr)
    for kind, figures in result["kinds"].items():
        print(f"{kind:14s} {figures['messages_per_s']:.3f} msg/s {figures['wire_bytes_per_s']:.0f} B/s "
              f"mean payload {figures['mean_payload_bytes']:.0f} B", file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
