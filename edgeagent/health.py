"""Health of the agent and of each camera, as plain dicts ready for JSON (MQTT, HTTP)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import psutil

from edgeagent import __version__
from edgeagent.camera.hub import CameraHub
from edgeagent.camera.source import CameraSource, CameraState
from edgeagent.media.snapshot import Snapshotter


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def camera_health(
    source: CameraSource, hub: CameraHub, snapshotter: Snapshotter, live: dict[str, Any] | None = None
) -> dict[str, Any]:
    stream = hub.stream
    online = source.state == CameraState.ONLINE
    age = None if hub.last_packet_at is None else time.monotonic() - hub.last_packet_at
    health: dict[str, Any] = {
        "state": source.state.value,
        "url": source.display_url,
        "transport": source.section.transport,
        "codec": stream.codec if stream else None,
        "width": stream.width if stream else None,
        "height": stream.height if stream else None,
        "fps": _round(hub.fps()) if online else 0.0,
        "bitrate_kbps": _round(hub.bitrate_kbps(), 1) if online else 0.0,
        "gop_s": _round(hub.gop_seconds()) if online else None,
        "last_packet_age_s": _round(age),
        "reconnects_last_hour": source.reconnects_last_hour,
        "stalls_last_hour": source.stalls_last_hour,
        "reconnects_total": source.reconnects_total,
        "stalls_total": source.stalls_total,
        "drops": hub.drops_by_consumer(),
        "last_error": source.last_error,
        "failures_in_row": source.failures_in_row,
        "retry_in_s": _round(max(0.0, source.retry_at - time.monotonic())) if source.retry_at and not online else None,
        "snapshots": {"made": snapshotter.made, "failures": snapshotter.failures},
    }
    if live is not None:
        health["live"] = live
    return health


def _temperature_c() -> float | None:
    """The board's hottest sensor, where it exposes one (many cabinet PCs do; VMs do not)."""
    try:
        sensors = psutil.sensors_temperatures()
    except (AttributeError, OSError):
        return None
    readings = [entry.current for entries in sensors.values() for entry in entries if entry.current]
    return round(max(readings), 1) if readings else None


class AgentHealth:
    """The agent's own health. CPU % is measured between two calls, like ``top`` does."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.started = time.monotonic()
        self._process = psutil.Process()
        self._process.cpu_percent(None)

    def snapshot(self, cameras: dict[str, dict[str, Any]]) -> dict[str, Any]:
        try:
            disk_free = shutil.disk_usage(self.state_dir).free
        except OSError:
            disk_free = None
        states = [camera["state"] for camera in cameras.values()]
        return {
            "version": __version__,
            "uptime_s": round(time.monotonic() - self.started, 1),
            "cpu_percent": round(self._process.cpu_percent(None), 1),
            "rss_bytes": self._process.memory_info().rss,
            "threads": self._process.num_threads(),
            "load": [round(value, 2) for value in os.getloadavg()],
            "disk_free_bytes": disk_free,
            "temperature_c": _temperature_c(),
            "cameras": {
                "total": len(states),
                "online": states.count(CameraState.ONLINE.value),
                "offline": len(states) - states.count(CameraState.ONLINE.value),
            },
        }
