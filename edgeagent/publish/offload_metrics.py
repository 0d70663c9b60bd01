"""Prometheus metrics of the offloader, read at scrape time: register beside the agent's collector with
``registry.register(OffloadCollector(offloader.stats))``."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from edgeagent.offload.service import OffloadStats

STATES = ("idle", "uploading", "retrying", "error")


class OffloadCollector(Collector):
    def __init__(self, stats: Callable[[], OffloadStats]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        stats = self.stats()
        queued = GaugeMetricFamily("edgeagent_offload_queued_files", "Files waiting for upload to object storage")
        queued.add_metric([], stats.queued)
        queued_bytes = GaugeMetricFamily("edgeagent_offload_queued_bytes", "Bytes waiting for upload")
        queued_bytes.add_metric([], stats.queued_bytes)
        uploaded = CounterMetricFamily("edgeagent_offload_uploaded_files", "Files uploaded and verified")
        uploaded.add_metric([], stats.uploaded)
        uploaded_bytes = CounterMetricFamily("edgeagent_offload_uploaded_bytes", "Bytes uploaded and verified")
        uploaded_bytes.add_metric([], stats.uploaded_bytes)
        failures = CounterMetricFamily("edgeagent_offload_failures", "Failed upload attempts")
        failures.add_metric([], stats.failures)
        throughput = GaugeMetricFamily("edgeagent_offload_throughput_kbps", "Upload rate over the recent uploads")
        throughput.add_metric([], stats.throughput_kbps)
        state = GaugeMetricFamily("edgeagent_offload_state", "1 for the offloader's state", labels=["state"])
        for name in STATES:
            state.add_metric([name], 1.0 if stats.state == name else 0.0)
        spool = GaugeMetricFamily("edgeagent_offload_export_spool_bytes",
                                  "HTTP exports kept on the recording disk for upload")  # fmt: skip
        spool.add_metric([], stats.export_spool_bytes)
        not_queued = CounterMetricFamily("edgeagent_offload_exports_not_queued",
                                         "HTTP exports downloaded but not kept for upload, by reason",
                                         labels=["reason"])  # fmt: skip
        for reason, count in sorted(stats.exports_not_queued.items()):
            not_queued.add_metric([reason], count)
        yield from (queued, queued_bytes, uploaded, uploaded_bytes, failures, throughput, state, spool, not_queued)
