"""The metric names a dashboard or alert expression reads, and nothing else."""

from __future__ import annotations

import pytest

from lobe.devtools.promql import metric_names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum(rate(lobe_chat_requests_total{status="success", model=~"$model"}[$__rate_interval]))'
            " / sum(rate(lobe_chat_requests_total[5m])) * 100",
            {"lobe_chat_requests_total"},
        ),
        (
            "histogram_quantile(0.99, sum by (le, route) (rate(lobe_http_request_duration_seconds_bucket[5m])))",
            {"lobe_http_request_duration_seconds_bucket"},
        ),
        (
            '100 - (avg by(instance) (irate(node_cpu_seconds_total{mode="idle"}[5m])) * 100)',
            {"node_cpu_seconds_total"},
        ),
        (
            "lobe:jetstream_consumer_lag:messages > 100 and deriv(lobe:jetstream_consumer_lag:messages[10m]) > 1",
            {"lobe:jetstream_consumer_lag:messages"},
        ),
        (
            "absent(lobe_worker_max_concurrency) or sum(lobe_worker_max_concurrency) == 0",
            {"lobe_worker_max_concurrency"},
        ),
        (
            "sum(rate(x_total[1h] offset 5m)) > 3 * (sum(y_total) or vector(0)) and z > 1e-9",
            {"x_total", "y_total", "z"},
        ),
        ('up{job=~"gateway|billing"} == 0', {"up"}),
    ],
)
def test_names_are_the_series_read_not_functions_labels_or_keywords(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
