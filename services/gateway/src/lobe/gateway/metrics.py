"""The gateway's own Prometheus series: what clients saw, as opposed to the fleet-wide business
metrics the metrics service derives from the event streams. Labels stay low-cardinality.
(Every HTTP request is measured by lobe.shared.http_telemetry.)"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
OVERHEAD_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

REQUESTS = Counter(
    "lobe_gateway_chat_requests_total",
    "Chat completion requests answered, by HTTP status.",
    ["status", "stream"],
)
EMBEDDINGS_REQUESTS = Counter(
    "lobe_gateway_embeddings_requests_total",
    "Embeddings requests answered, by HTTP status.",
    ["status"],
)
MEDIA_REQUESTS = Counter(
    "lobe_gateway_media_requests_total",
    "Images, speech and transcription requests answered, by endpoint and HTTP status.",
    ["endpoint", "status"],
)
RESPONSES_REQUESTS = Counter(
    "lobe_gateway_responses_requests_total",
    "Responses API requests answered, by HTTP status.",
    ["status", "stream"],
)
TTFT = Histogram(
    "lobe_gateway_ttft_seconds",
    "Time from the request's arrival to the first token sent to the client.",
    buckets=LATENCY_BUCKETS,
)
OVERHEAD = Histogram(
    "lobe_gateway_overhead_seconds",
    "Latency the gateway adds before the provider is called: from the request's arrival to a "
    "worker accepting it (authentication, validation, budget admission, dispatch over NATS).",
    buckets=OVERHEAD_BUCKETS,
)
IN_FLIGHT = Gauge("lobe_gateway_chat_in_flight", "Chat completion requests being answered now.")
STREAMING_CONNECTIONS = Gauge(
    "lobe_streaming_connections_active", "SSE answers open at this gateway now (from their first byte)."
)
RATE_LIMITED = Counter(
    "lobe_gateway_rate_limited_total",
    "Requests refused with 429 by a rate limit, by the limit that refused them.",
    ["limit"],  # requests, tokens, concurrent, ip
)
RATE_LIMIT_UNCHECKED = Counter(
    "lobe_gateway_rate_limit_unchecked_total",
    "Requests the rate limiter could not check (Redis unreachable), by what the fail mode did.",
    ["outcome"],  # admitted, refused
)
CACHE_LOOKUPS = Counter(
    "lobe_gateway_cache_lookups_total",
    "Response cache lookups of cacheable requests, by where the answer was found.",
    ["result"],  # memory, redis, miss
)
# Read from Redis, so every replica reports the same fleet-wide figure: aggregate with max(), not sum().
SESSIONS_ACTIVE = Gauge(
    "lobe_user_sessions_active", "Signed-in sessions not yet expired or ended, fleet-wide."
)

# Every label value exists from the start, at 0: rate() needs a first sample before the first event.
for _limit in ("requests", "tokens", "concurrent", "ip"):
    RATE_LIMITED.labels(limit=_limit)
for _outcome in ("admitted", "refused"):
    RATE_LIMIT_UNCHECKED.labels(outcome=_outcome)
for _result in ("memory", "redis", "miss"):
    CACHE_LOOKUPS.labels(result=_result)
