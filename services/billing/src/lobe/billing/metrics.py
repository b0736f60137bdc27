"""Billing's Prometheus metrics (process-wide, served on /metrics by lobe.shared.ops).
Its database statements are timed by lobe.billing.db_metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

MAX_MODEL_LABELS = 500  # provider/model pairs kept on the cost counter; later ones fold into "other"

INGESTED = Counter("billing_usage_ingested_total", "Usage events written to the ledger.")
DUPLICATES = Counter("billing_usage_duplicates_total", "Usage events dropped as already in the ledger.")
DEAD_LETTERED = Counter("billing_usage_dead_lettered_total", "Malformed usage events sent to usage.dead.")
UNPRICED = Counter("billing_usage_unpriced_total", "Usage events priced by the default rate.")
BATCH_FAILURES = Counter("billing_ingest_batch_failures_total", "Batches nak'ed for redelivery.", ["reason"])
BATCH_SECONDS = Histogram(
    "billing_ingest_batch_seconds",
    "Time to write one batch (decode, price, transaction, ack).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
COST = Counter(
    "lobe_chat_cost_usd",
    "US dollars charged for chat requests, as written to the ledger (each request once).",
    ["provider", "model"],
)
