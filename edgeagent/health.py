"""Health of the agent and of each camera as typed records, and the one place they become JSON.

HTTP (/cameras), MQTT (health topics), /metrics and ``edgeagent probe`` all read these records. A field
with ``metadata={"json": False}`` is for the agent's own readers (metrics, status) and stays out of the
JSON payloads; ``digits`` rounds a float in the JSON only (metrics get the exact value). To add a health
field: add it to the record (JSON key = field name) and fill it in ``camera_health`` or
``AgentHealthMonitor.measure``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import psutil

from edgeagent import __version__
from edgeagent.live.stats import LiveStats
from edgeagent.onvif.link import OnvifHealth
from edgeagent.unit import CameraUnit

INTERNAL: dict[str, Any] = {"json": False}


def _digits(count: int) -> dict[str, Any]:
    return {"digits": count}


@dataclass(frozen=True, slots=True)
class SnapshotCounts:
    made: int
    failures: int


@dataclass(frozen=True, slots=True)
class RecordingHealth:
    """One camera's recording (edgeagent.record.service.RecordingStats; as on its recording topic)."""

    state: str  # recording, paused or off
    reason: str | None
    oldest: str | None  # RFC 3339
    newest: str | None
    bytes: int  # stored
    bytes_written: int  # since the agent started
    bytes_per_hour: float = field(metadata=_digits(0))
    dropped: int
    disk_days: float | None = field(metadata=_digits(2))  # days the disk holds at the current rate


@dataclass(frozen=True, slots=True)
class RecordingSummary:
    """The agent's recording: cameras by state, what is stored and written, the disk, the card's wear."""

    recording: int
    paused: int
    off: int
    bytes: int
    bytes_written: int
    disk_days: float | None = field(metadata=_digits(2))
    endurance_used: float | None = field(metadata=_digits(6))  # share of storage.endurance_tbw written
    # With offload: HTTP exports downloaded but not kept for upload, by reason (spool full, disk short, ...).
    exports_not_queued: dict[str, int] | None = field(default=None, metadata={"omit_none": True})
    # Bookmarks (ONVIF events, picture alarms) by outcome: stored, coalesced (one of the same kind within
    # 10 s), dropped (too many waiting for the disk, or the store failed).
    bookmarks: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PictureReport:
    """The camera's alarms (as on its alarms topic) with the picture checks' latest figures."""

    active: list[str]  # offline first, then frozen, blank, blurred, moved
    since: dict[str, str]  # alarm -> RFC 3339
    measures: dict[str, float | None] | None  # the last keyframe's figures (PictureMeasures), rounded
    checks: int  # keyframes checked
    check_seconds_total: float = field(metadata=_digits(4))


@dataclass(frozen=True, slots=True)
class UplinkHealth:
    """One camera's uplink to the centre's media server (edgeagent.uplink; as GET /cameras/<cam>/uplink)."""

    kind: str  # the media server's kind, janus or whip (never its URL)
    state: str  # stopped, connecting, publishing or retrying
    publishing: bool  # the peer connection is connected: the media server gets the picture
    wanted: bool  # it should publish: an always camera, or a start request's lease runs
    always: bool
    reason: str | None  # while wanted and not publishing, one of edgeagent.uplink.signaling.REASONS
    last_error: str | None  # the latest failure, one line, redacted (kept after a recovery)
    retry_in_s: float | None = field(metadata=_digits(1))
    publishes_started: int  # a peer connection and an offer each
    publishes_connected: int
    camera_restarts: int  # the camera's stream restarted under a running publication (which went on)
    server_restarts: int  # a connected publication lost (a restarted server, an expired session) and redone
    bytes_sent: int  # SRTP, SRTCP and DTLS as handed to UDP, every publication (aiortc's transport stats)
    packets_sent: int
    payload_bytes_sent: int  # the H.264 in the RTP packets (aiortc's outbound-rtp stats)
    since_start_request_s: float | None = field(metadata=_digits(1))  # on demand: the centre's last start
    idle_stop_in_s: float | None = field(metadata=_digits(1))  # on demand: the lease's time left
    last_recovery_s: float | None = field(metadata=_digits(3))  # from a lost publication to the next one


@dataclass(frozen=True, slots=True)
class CameraHealth:
    state: str
    url: str
    transport: str
    codec: str | None
    width: int | None
    height: int | None
    fps: float = field(metadata=_digits(2))
    bitrate_kbps: float = field(metadata=_digits(1))
    gop_s: float | None = field(metadata=_digits(2))
    last_packet_age_s: float | None = field(metadata=_digits(2))
    reconnects_last_hour: int
    stalls_last_hour: int
    reconnects_total: int
    stalls_total: int
    drops: dict[str, int]
    last_error: str | None
    failures_in_row: int
    retry_in_s: float | None = field(metadata=_digits(2))
    waiting_for: str | None  # what the source waits for while offline: the camera to accept, or a retry
    snapshots: SnapshotCounts
    picture: PictureReport
    live: LiveStats | None = field(metadata={"omit_none": True})  # only with the live view on
    onvif: OnvifHealth | None = field(metadata={"omit_none": True})  # only for cameras with an onvif section
    recording: RecordingHealth | None = field(metadata={"omit_none": True})  # only with a recording section
    uplink: UplinkHealth | None = field(metadata={"omit_none": True})  # only with an uplink section
    online: bool = field(metadata=INTERNAL)
    status: str = field(metadata=INTERNAL)  # "online" / "offline", the status topic's payload
    packets_total: int = field(metadata=INTERNAL)
    bytes_total: int = field(metadata=INTERNAL)


@dataclass(frozen=True, slots=True)
class CameraCounts:
    total: int
    online: int
    offline: int


@dataclass(frozen=True, slots=True)
class MqttHealth:
    """The agent's link to its broker (cluster): which one it is on, and how often it had to change."""

    connected: bool
    broker: str | None  # "host:port" while connected
    failovers_total: int  # connections to another broker than the one before
    connects_total: int


@dataclass(frozen=True, slots=True)
class AgentHealth:
    version: str
    uptime_s: float = field(metadata=_digits(1))
    cpu_percent: float = field(metadata=_digits(1))
    rss_bytes: int
    threads: int
    load: tuple[float, ...] = field(metadata=_digits(2))
    disk_free_bytes: int | None
    temperature_c: float | None = field(metadata=_digits(1))
    cameras: CameraCounts
    mqtt: MqttHealth | None = field(default=None, metadata={"omit_none": True})
    recording: RecordingSummary | None = field(default=None, metadata={"omit_none": True})


def as_json(record: Any) -> dict[str, Any]:
    """The record as a JSON-ready dict: the one conversion every payload goes through."""
    document: dict[str, Any] = {}
    for item in fields(record):
        if not item.metadata.get("json", True):
            continue
        value = getattr(record, item.name)
        if value is None and item.metadata.get("omit_none"):
            continue
        document[item.name] = _json_value(value, item.metadata.get("digits"))
    return document


def _json_value(value: Any, digits: int | None) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return as_json(value)
    if isinstance(value, tuple | list):
        return [_json_value(entry, digits) for entry in value]
    if isinstance(value, dict):
        return dict(value)
    if digits is not None and isinstance(value, float):
        return round(value, digits)
    return value


def camera_health(
    unit: CameraUnit,
    live: LiveStats | None = None,
    recording: RecordingHealth | None = None,
    uplink: UplinkHealth | None = None,
) -> CameraHealth:
    camera, source, hub = unit.camera, unit.camera.source, unit.camera.hub
    stream = hub.stream
    online = camera.online
    now = time.monotonic()
    return CameraHealth(
        state=source.state.value,
        url=source.stream.display,
        transport=source.section.transport,
        codec=stream.codec if stream else None,
        width=stream.width if stream else None,
        height=stream.height if stream else None,
        fps=hub.fps() if online else 0.0,
        bitrate_kbps=hub.bitrate_kbps() if online else 0.0,
        gop_s=hub.gop_seconds() if online else None,
        last_packet_age_s=None if hub.last_packet_at is None else now - hub.last_packet_at,
        reconnects_last_hour=source.reconnects_last_hour,
        stalls_last_hour=source.stalls_last_hour,
        reconnects_total=source.reconnects_total,
        stalls_total=source.stalls_total,
        drops=hub.drops_by_consumer(),
        last_error=source.last_error,
        failures_in_row=source.failures_in_row,
        retry_in_s=max(0.0, source.retry_at - now) if source.retry_at and not online else None,
        waiting_for=None if online else source.waiting_for,
        snapshots=SnapshotCounts(unit.snapshotter.made, unit.snapshotter.failures),
        picture=picture_report(unit),
        live=live,
        onvif=unit.onvif.health() if unit.onvif is not None else None,
        recording=recording,
        uplink=uplink,
        online=online,
        status=camera.status,
        packets_total=hub.packets_total,
        bytes_total=hub.bytes_total,
    )


def picture_report(unit: CameraUnit) -> PictureReport:
    watch, document = unit.snapshotter.picture, unit.alarms.document
    measures = None
    if watch.measures is not None:
        figures = {item.name: getattr(watch.measures, item.name) for item in fields(watch.measures)}
        measures = {name: None if value is None else round(value, 4) for name, value in figures.items()}
    return PictureReport(
        active=list(document["active"]),
        since=dict(document["since"]),
        measures=measures,
        checks=watch.checks,
        check_seconds_total=watch.seconds_total,
    )


def cameras_document(agent_id: str, cameras: Mapping[str, CameraHealth]) -> dict[str, Any]:
    """GET /cameras: every camera with its status and health."""
    return {
        "agent": agent_id,
        "cameras": [
            {"name": name, "status": health.status, "health": as_json(health)} for name, health in cameras.items()
        ],
    }


def _temperature_c() -> float | None:
    """The board's hottest sensor, where it exposes one (many cabinet PCs do; VMs do not)."""
    try:
        sensors = psutil.sensors_temperatures()
    except (AttributeError, OSError):
        return None
    readings = [entry.current for entries in sensors.values() for entry in entries if entry.current]
    return max(readings) if readings else None


class AgentHealthMonitor:
    """Measures the agent's own health. CPU % is measured between two calls, like ``top`` does."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.started = time.monotonic()
        self._process = psutil.Process()
        self._process.cpu_percent(None)

    def measure(self, cameras: Sequence[CameraHealth]) -> AgentHealth:
        try:
            disk_free: int | None = shutil.disk_usage(self.state_dir).free
        except OSError:
            disk_free = None
        online = sum(1 for camera in cameras if camera.online)
        return AgentHealth(
            version=__version__,
            uptime_s=time.monotonic() - self.started,
            cpu_percent=self._process.cpu_percent(None),
            rss_bytes=self._process.memory_info().rss,
            threads=self._process.num_threads(),
            load=tuple(os.getloadavg()),
            disk_free_bytes=disk_free,
            temperature_c=_temperature_c(),
            cameras=CameraCounts(total=len(cameras), online=online, offline=len(cameras) - online),
        )
