"""Prometheus metrics, read from the running parts at scrape time (nothing to keep in step)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from edgeagent.camera.camera import Camera

# What the live-view service reports per camera, as (key, metric name, help, kind).
LIVE_METRICS = (
    ("viewers", "edgeagent_live_viewers", "WebRTC viewers connected", "gauge"),
    ("bytes_sent", "edgeagent_live_sent_bytes", "Media bytes sent to viewers", "counter"),
    ("packets_sent", "edgeagent_live_sent_packets", "Media packets sent to viewers", "counter"),
    ("packets_dropped", "edgeagent_live_dropped_packets", "Packets dropped for slow viewers", "counter"),
    ("time_to_first_frame_s", "edgeagent_live_time_to_first_frame_seconds", "Last viewer's wait", "gauge"),
    ("transcoding", "edgeagent_live_transcoders", "Shared transcoders running", "gauge"),
)


class AgentCollector(Collector):
    def __init__(
        self,
        cameras: Mapping[str, Camera],
        live_stats: Callable[[str], dict[str, Any]] | None = None,
        mqtt_connected: Callable[[], bool] | None = None,
    ) -> None:
        self.cameras = cameras
        self.live_stats = live_stats
        self.mqtt_connected = mqtt_connected

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
        drops = CounterMetricFamily(
            "edgeagent_consumer_dropped_packets",
            "Packets a slow consumer lost",
            labels=["camera", "consumer"],
        )
        live = {
            key: (GaugeMetricFamily if kind == "gauge" else CounterMetricFamily)(name, text, labels=labels)
            for key, name, text, kind in LIVE_METRICS
        }
        now = time.monotonic()
        for name, camera in self.cameras.items():
            hub = camera.hub
            up.add_metric([name], 1.0 if camera.online else 0.0)
            fps.add_metric([name], hub.fps() if camera.online else 0.0)
            bitrate.add_metric([name], hub.bitrate_kbps() if camera.online else 0.0)
            if hub.last_packet_at is not None:
                age.add_metric([name], now - hub.last_packet_at)
            packets.add_metric([name], hub.packets_total)
            received.add_metric([name], hub.bytes_total)
            reconnects.add_metric([name], camera.source.reconnects_total)
            stalls.add_metric([name], camera.source.stalls_total)
            snapshots.add_metric([name], camera.snapshotter.made)
            for consumer, count in hub.drops_by_consumer().items():
                drops.add_metric([name, consumer], count)
            if self.live_stats is not None:
                stats = self.live_stats(name)
                for key, family in live.items():
                    value = stats.get(key)
                    if value is not None:
                        family.add_metric([name], float(value))
        yield from (up, fps, bitrate, age, packets, received, reconnects, stalls, snapshots, drops)
        if self.live_stats is not None:
            yield from live.values()
        if self.mqtt_connected is not None:
            mqtt = GaugeMetricFamily("edgeagent_mqtt_connected", "1 while connected to the broker")
            mqtt.add_metric([], 1.0 if self.mqtt_connected() else 0.0)
            yield mqtt


def make_registry(collector: AgentCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
