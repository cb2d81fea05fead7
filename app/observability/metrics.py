"""Prometheus metrics, correct with several web processes.

With `PROMETHEUS_MULTIPROC_DIR` set (`stamp serve --web-processes N` and
`scripts/scale.sh` set it), every process writes its counters to memory-mapped files in
that directory and a scrape of any process sums them all; without it the counts are the
answering process's own. It must be set before this module is first imported.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# `*_created` series double the output and no dashboard here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "stamp_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ("method", "route", "status"),
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "stamp_http_request_duration_seconds",
    "Time from the request arriving to the response starting, by route template.",
    ("route",),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
JOBS_NOT_SENT = Counter(
    "stamp_jobs_not_sent",
    "Jobs that could not be enqueued after their transaction committed (queue down); "
    "the periodic sweeps send their work later.",
    registry=REGISTRY,
)
WEBHOOK_BATCH_SIZE = Histogram(
    "stamp_webhook_batch_size",
    "Order deliveries written in one transaction (webhooks/batch.py); 1 when alone.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
    registry=REGISTRY,
)
WEBHOOK_LAG = Histogram(
    "stamp_webhook_lag_seconds",
    "Time from the platform triggering a webhook to Stamp receiving it (retries included).",
    ("source",),
    buckets=(1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0),
    registry=REGISTRY,
)


class _Snapshot(Collector):
    """Figures read at scrape time (queue depth, backlogs), exported as gauges."""

    def __init__(self, gauges: dict[str, tuple[str, float | dict[str, float]]]) -> None:
        self.gauges = gauges

    def collect(self) -> list[GaugeMetricFamily]:
        families: list[GaugeMetricFamily] = []
        for name, (documentation, value) in self.gauges.items():
            if isinstance(value, dict):
                family = GaugeMetricFamily(name, documentation, labels=["kind"])
                for label, figure in value.items():
                    family.add_metric([label], figure)
            else:
                family = GaugeMetricFamily(name, documentation, value=value)
            families.append(family)
        return families


def render(gauges: dict[str, tuple[str, float | dict[str, float]]]) -> bytes:
    """The Prometheus text exposition: every process's counters plus the scrape-time gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        counters = CollectorRegistry()
        multiprocess.MultiProcessCollector(counters)  # type: ignore[no-untyped-call]
        text = generate_latest(counters)
    else:
        text = generate_latest(REGISTRY)
    snapshot = CollectorRegistry()
    snapshot.register(_Snapshot(gauges))
    return text + generate_latest(snapshot)
