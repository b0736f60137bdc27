"""JetStream streams and durable consumers: the durable half of the event catalog."""

from __future__ import annotations

from dataclasses import dataclass

from lobe.shared.events.auth import (
    AUTH_KEY_ISSUED,
    AUTH_KEY_REVOKED,
    AUTH_LOGIN_ENDED,
    AUTH_LOGIN_FAILED,
    AUTH_LOGIN_SUCCEEDED,
)
from lobe.shared.events.billing import (
    BILLING_ACCOUNT_CHANGED,
    BILLING_LIMIT_EXCEEDED,
    BILLING_PRICE_MISSING,
    BILLING_USAGE_RESET,
)
from lobe.shared.events.lifecycle import SERVICE_STARTED, SERVICE_STOPPED
from lobe.shared.events.routing import (
    ROUTING_BREAKER_CLOSED,
    ROUTING_BREAKER_HALF_OPENED,
    ROUTING_BREAKER_OPENED,
)
from lobe.shared.events.usage import USAGE_DEAD_LETTER, USAGE_RECORDED, USAGE_REPORTED


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    max_age_s: int
    # Publishes with the same Nats-Msg-Id inside this window are stored once.
    duplicate_window_s: int = 120


USAGE = StreamSpec(
    name="USAGE",
    subjects=(USAGE_RECORDED, USAGE_REPORTED, USAGE_DEAD_LETTER),
    max_age_s=7 * 24 * 3600,
    # Over three times the longest a publisher retries (lobe.shared.bus.facts: 30 attempts of at most
    # 2 s and 1 s apart); a later duplicate is dropped by billing's unique key and metrics' dedupe.
    # No longer: nats-server keeps the window's ids in memory, and an hour at 400 usage events/s
    # is 1.4 million of them (docs/performance.md, the soak).
    duplicate_window_s=300,
)
EVENTS = StreamSpec(
    name="EVENTS",
    subjects=(
        BILLING_LIMIT_EXCEEDED,
        BILLING_PRICE_MISSING,
        BILLING_ACCOUNT_CHANGED,
        BILLING_USAGE_RESET,
        AUTH_KEY_ISSUED,
        AUTH_KEY_REVOKED,
        AUTH_LOGIN_SUCCEEDED,
        AUTH_LOGIN_FAILED,
        AUTH_LOGIN_ENDED,
        SERVICE_STARTED,
        SERVICE_STOPPED,
        ROUTING_BREAKER_OPENED,
        ROUTING_BREAKER_HALF_OPENED,
        ROUTING_BREAKER_CLOSED,
    ),
    max_age_s=7 * 24 * 3600,
)
ALL_STREAMS = (USAGE, EVENTS)

# Durable consumers are named after the consuming service.
BILLING_CONSUMER = "billing"
METRICS_CONSUMER = "metrics"
