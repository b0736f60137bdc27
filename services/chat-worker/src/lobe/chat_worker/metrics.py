"""The chat worker's Prometheus series: how full it is, for the autoscaler and the dashboards.
What its requests used and cost is counted fleet-wide from the usage events (metrics service)."""

from __future__ import annotations

from prometheus_client import Gauge

STREAMS_ACTIVE = Gauge("lobe_worker_streams_active", "Answers this worker is streaming now.")
MAX_CONCURRENCY = Gauge(
    "lobe_worker_max_concurrency", "Answers this worker streams at once before refusing (saturated)."
)
