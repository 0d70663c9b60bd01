"""Prometheus metrics of the uplink to the centre's media server, read at scrape time: register beside the
agent's collector with ``registry.register(UplinkCollector(uplink.health))``.

Labels stay few and fixed: the camera, the media server's kind (janus or whip, never its URL), a reason
from ``signaling.REASONS``, a restart's cause. The error's text is in the health JSON, not in a label.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from edgeagent.health import UplinkHealth
from edgeagent.uplink.signaling import REASONS


class UplinkCollector(Collector):
    def __init__(self, health: Callable[[], Mapping[str, UplinkHealth]]) -> None:
        self.health = health

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        camera = ["camera"]
        publishing = GaugeMetricFamily(
            "edgeagent_uplink_publishing", "1 while the media server gets the camera", labels=["camera", "kind"]
        )
        wanted = GaugeMetricFamily(
            "edgeagent_uplink_wanted",
            "1 while the camera should be published (always, or a start's lease)",
            labels=camera,
        )
        reason = GaugeMetricFamily(
            "edgeagent_uplink_down_reason",
            "1 for why a camera that should be published is not (all 0 otherwise)",
            labels=["camera", "reason"],
        )
        sent = CounterMetricFamily(
            "edgeagent_uplink_bytes_sent", "Bytes handed to UDP for the media server (SRTP, SRTCP, DTLS)", labels=camera
        )
        packets = CounterMetricFamily(
            "edgeagent_uplink_packets_sent", "Datagrams sent to the media server", labels=camera
        )
        payload = CounterMetricFamily(
            "edgeagent_uplink_payload_bytes_sent", "Video bytes in the RTP packets sent", labels=camera
        )
        started = CounterMetricFamily(
            "edgeagent_uplink_publishes_started", "Publications begun (a peer connection and an offer)", labels=camera
        )
        connected = CounterMetricFamily(
            "edgeagent_uplink_publishes_connected", "Publications whose media connected", labels=camera
        )
        restarts = CounterMetricFamily(
            "edgeagent_uplink_restarts",
            "camera: its stream restarted under the publication; server: the publication was lost and redone",
            labels=["camera", "cause"],
        )
        requested = GaugeMetricFamily(
            "edgeagent_uplink_start_request_age_seconds", "Time since the centre's last start request", labels=camera
        )
        idle = GaugeMetricFamily(
            "edgeagent_uplink_idle_stop_seconds", "Time left before an on-demand uplink stops by itself", labels=camera
        )
        for name, health in sorted(self.health().items()):
            publishing.add_metric([name, health.kind], 1.0 if health.publishing else 0.0)
            wanted.add_metric([name], 1.0 if health.wanted else 0.0)
            for why in REASONS:
                reason.add_metric([name, why], 1.0 if health.reason == why else 0.0)
            sent.add_metric([name], health.bytes_sent)
            packets.add_metric([name], health.packets_sent)
            payload.add_metric([name], health.payload_bytes_sent)
            started.add_metric([name], health.publishes_started)
            connected.add_metric([name], health.publishes_connected)
            restarts.add_metric([name, "camera"], health.camera_restarts)
            restarts.add_metric([name, "server"], health.server_restarts)
            if health.since_start_request_s is not None:
                requested.add_metric([name], health.since_start_request_s)
            if health.idle_stop_in_s is not None:
                idle.add_metric([name], health.idle_stop_in_s)
        yield from (publishing, wanted, reason, sent, packets, payload, started, connected, restarts, requested, idle)
