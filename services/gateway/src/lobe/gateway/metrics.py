"""The gateway's own Prometheus series: what clients saw, as opposed to the fleet-wide business
metrics the metrics service derives from the event streams. Labels stay low-cardinality."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

REQUESTS = Counter(
    "lobe_gateway_chat_requests_total",
    "Chat completion requests answered, by HTTP status.",
    ["status", "stream"],
)
TTFT = Histogram(
    "lobe_gateway_ttft_seconds",
    "Time from request to the first token sent to the client.",
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge("lobe_gateway_chat_in_flight", "Chat completion requests being answered now.")
# Read from Redis, so every replica reports the same fleet-wide figure: aggregate with max(), not sum().
SESSIONS_ACTIVE = Gauge(
    "lobe_user_sessions_active", "Signed-in sessions not yet expired or ended, fleet-wide."
)
