"""Prometheus metrics, read from the running parts at scrape time (nothing to keep in step)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from edgeagent.health import CameraHealth, MqttHealth, RecordingSummary
from edgeagent.media.picture import ALARMS

# What the live-view service reports per camera, as (LiveStats field, metric name, help, kind).
LIVE_METRICS = (
    ("viewers", "edgeagent_live_viewers", "WebRTC viewers connected", "gauge"),
    ("bytes_sent", "edgeagent_live_sent_bytes", "Media bytes sent to viewers", "counter"),
    ("packets_sent", "edgeagent_live_sent_packets", "Media packets sent to viewers", "counter"),
    ("packets_dropped", "edgeagent_live_dropped_packets", "Packets dropped for slow viewers", "counter"),
    ("time_to_first_frame_s", "edgeagent_live_time_to_first_frame_seconds", "Last viewer's wait", "gauge"),
    ("transcoding", "edgeagent_live_transcoders", "Shared transcoders running", "gauge"),
)

# What strangers tried and what the guards did, as (key, metric name, help, kind); read from a mapping.
GUARD_METRICS = (
    ("auth_failures", "edgeagent_http_auth_failures", "Requests with a missing or wrong token", "counter"),
    ("auth_throttled", "edgeagent_http_auth_throttled", "Requests answered 429 after repeated failures", "counter"),
    ("connections_open", "edgeagent_http_connections", "HTTP connections open", "gauge"),
    ("connections_refused", "edgeagent_http_connections_refused", "Connections closed unread over a cap", "counter"),
    ("connections_evicted", "edgeagent_http_connections_evicted", "Idle connections closed to make room", "counter"),
    ("accept_errors", "edgeagent_http_accept_errors", "accept() failures for lack of descriptors", "counter"),
    ("free_descriptors", "edgeagent_free_file_descriptors", "File descriptors left under the limit", "gauge"),
)


class AgentCollector(Collector):
    """Reads the same health records as /cameras and MQTT, at every scrape."""

    def __init__(
        self,
        cameras: Callable[[], Mapping[str, CameraHealth]],
        live: bool = False,
        mqtt: Callable[[], MqttHealth] | None = None,
        guards: Callable[[], Mapping[str, float]] | None = None,
        commands_refused: Callable[[], Mapping[str, int]] | None = None,
        recording: Callable[[], RecordingSummary] | None = None,
    ) -> None:
        self.recording = recording
        self.cameras = cameras
        self.live = live
        self.mqtt = mqtt
        self.guards = guards
        self.commands_refused = commands_refused

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        labels = ["camera"]
        up = GaugeMetricFamily("edgeagent_camera_up", "1 while packets flow from the camera", labels=labels)
        fps = GaugeMetricFamily("edgeagent_camera_fps", "Measured frame rate", labels=labels)
        bitrate = GaugeMetricFamily("edgeagent_camera_bitrate_kbps", "Measured bitrate", labels=labels)
        age = GaugeMetricFamily(
            "edgeagent_camera_last_packet_age_seconds", "Time since the last packet", labels=labels
        )
        packets = CounterMetricFamily("edgeagent_camera_packets", "Packets received", labels=labels)
        received = CounterMetricFamily("edgeagent_camera_received_bytes", "Bytes received", labels=labels)
        reconnects = CounterMetricFamily("edgeagent_camera_reconnects", "Reconnections", labels=labels)
        stalls = CounterMetricFamily("edgeagent_camera_stalls", "Silent streams detected", labels=labels)
        snapshots = CounterMetricFamily("edgeagent_snapshots", "Snapshots made", labels=labels)
        alarm = GaugeMetricFamily(
            "edgeagent_camera_alarm", "1 while the alarm is active (offline, picture)", labels=["camera", "alarm"]
        )
        checks = CounterMetricFamily("edgeagent_picture_checks", "Keyframes checked for picture health", labels=labels)
        check_seconds = CounterMetricFamily(
            "edgeagent_picture_check_seconds", "Time spent in the picture checks", labels=labels
        )
        drops = CounterMetricFamily(
            "edgeagent_consumer_dropped_packets",
            "Packets a slow consumer lost",
            labels=["camera", "consumer"],
        )
        live = {
            key: (GaugeMetricFamily if kind == "gauge" else CounterMetricFamily)(name, text, labels=labels)
            for key, name, text, kind in LIVE_METRICS
        }
        paused = GaugeMetricFamily("edgeagent_recording_paused", "1 while recording is paused", labels=labels)
        stored = GaugeMetricFamily("edgeagent_recording_bytes", "Recorded bytes stored", labels=labels)
        for name, health in self.cameras().items():
            if health.recording is not None:
                paused.add_metric([name], 1.0 if health.recording.state == "paused" else 0.0)
                stored.add_metric([name], health.recording.bytes)
            up.add_metric([name], 1.0 if health.online else 0.0)
            fps.add_metric([name], health.fps)
            bitrate.add_metric([name], health.bitrate_kbps)
            if health.last_packet_age_s is not None:
                age.add_metric([name], health.last_packet_age_s)
            packets.add_metric([name], health.packets_total)
            received.add_metric([name], health.bytes_total)
            reconnects.add_metric([name], health.reconnects_total)
            stalls.add_metric([name], health.stalls_total)
            snapshots.add_metric([name], health.snapshots.made)
            for alarm_name in ALARMS:
                alarm.add_metric([name, alarm_name], 1.0 if alarm_name in health.picture.active else 0.0)
            checks.add_metric([name], health.picture.checks)
            check_seconds.add_metric([name], health.picture.check_seconds_total)
            for consumer, count in health.drops.items():
                drops.add_metric([name, consumer], count)
            if health.live is not None:
                for key, family in live.items():
                    value = getattr(health.live, key)
                    if value is not None:
                        family.add_metric([name], float(value))
        yield from (up, fps, bitrate, age, packets, received, reconnects, stalls, snapshots, drops)
        yield from (alarm, checks, check_seconds)
        if self.live:
            yield from live.values()
        if self.recording is not None:
            yield from (paused, stored, *_recording_metrics(self.recording()))
        if self.mqtt is not None:
            yield from _mqtt_metrics(self.mqtt())
        if self.guards is not None:
            figures = self.guards()
            for key, name, text, kind in GUARD_METRICS:
                family = (GaugeMetricFamily if kind == "gauge" else CounterMetricFamily)(name, text)
                family.add_metric([], float(figures.get(key, 0)))
                yield family
        if self.commands_refused is not None:
            refused = CounterMetricFamily(
                "edgeagent_mqtt_commands_refused", "MQTT commands ignored by a limit", labels=["command"]
            )
            for command, count in sorted(self.commands_refused().items()):
                refused.add_metric([command], count)
            yield refused


def _mqtt_metrics(link: MqttHealth) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    connected = GaugeMetricFamily("edgeagent_mqtt_connected", "1 while connected to the broker")
    connected.add_metric([], 1.0 if link.connected else 0.0)
    broker = GaugeMetricFamily("edgeagent_mqtt_broker", "1 for the broker connected to", labels=["broker"])
    if link.broker is not None:
        broker.add_metric([link.broker], 1.0)
    failovers = CounterMetricFamily("edgeagent_mqtt_failovers", "Connections to another broker than the one before")
    failovers.add_metric([], link.failovers_total)
    connects = CounterMetricFamily("edgeagent_mqtt_connects", "Connections to a broker")
    connects.add_metric([], link.connects_total)
    yield from (connected, broker, failovers, connects)


def _recording_metrics(summary: RecordingSummary) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    written = CounterMetricFamily("edgeagent_recording_written_bytes", "Bytes of video written since the start")
    written.add_metric([], summary.bytes_written)
    yield written
    bookmarks = CounterMetricFamily(
        "edgeagent_recording_bookmarks",
        "Bookmarks (ONVIF events, picture alarms) by outcome: stored, coalesced (within 10 s of one of the "
        "same kind), dropped",
        labels=["outcome"],
    )
    for outcome, count in sorted(summary.bookmarks.items()):
        bookmarks.add_metric([outcome], count)
    yield bookmarks
    if summary.disk_days is not None:  # no rate measured yet: no figure rather than infinity
        days = GaugeMetricFamily("edgeagent_recording_disk_days", "Days of video the disk holds at the current rate")
        days.add_metric([], summary.disk_days)
        yield days


def make_registry(collector: AgentCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
