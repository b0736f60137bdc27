"""The worker's routing series, served on the ops port's /metrics with the process's others (the
process's default registry; a worker started inside a test gets a registry of its own).

Every worker reports the fleet's breaker state as it sees it (the store pushes each transition
to all), so `max by (deployment)` over the fleet is the state; the counters are this worker's.
Labels are configured names only: bounded by the routing file.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

from lobe.shared.events.routing import BreakerState

BREAKER_VALUE: dict[BreakerState, int] = {"closed": 0, "half_open": 1, "open": 2}
ATTEMPT_OUTCOMES = ("ok", "failed", "rejected", "cancelled")
FALLBACK_REASONS = ("error", "context_window")
STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)


class RoutingMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry = registry or CollectorRegistry()
        self.breaker_state = Gauge(
            "lobe_deployment_breaker_state",
            "Circuit breaker of a deployment, fleet-wide: 0 closed, 1 half-open (one probe), 2 open.",
            ["deployment"],
            registry=registry,
        )
        self.attempts = Counter(
            "lobe_routing_attempts_total",
            "Provider calls, by outcome: ok, failed (the deployment's fault), rejected (the request's "
            "fault), cancelled.",
            ["deployment", "outcome"],
            registry=registry,
        )
        self.retries = Counter(
            "lobe_routing_retries_total",
            "Retries of the same deployment (after a backoff or the provider's Retry-After).",
            ["deployment"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "lobe_routing_fallbacks_total",
            "Requests that left a deployment for the next one after it failed, by reason: error, "
            "context_window.",
            ["deployment", "reason"],
            registry=registry,
        )
        self.skipped = Counter(
            "lobe_routing_skipped_total",
            "Deployments passed over without a call: breaker_open, rpm_limit, tpm_limit.",
            ["deployment", "reason"],
            registry=registry,
        )
        self.store_degraded = Gauge(
            "lobe_routing_store_degraded",
            "1 while the shared routing store is unreachable and this worker routes on local state.",
            registry=registry,
        )
        self.store_seconds = Histogram(
            "lobe_routing_store_seconds",
            "Time a request waited on the routing store before its provider call (admission).",
            buckets=STORE_BUCKETS,
            registry=registry,
        )
        self.reloads = Counter(
            "lobe_routing_reloads_total",
            "Routing file reloads: applied, or refused (invalid; the routing in use stays).",
            ["outcome"],
            registry=registry,
        )

    def configured(self, deployment: str, state: BreakerState) -> None:
        """A deployment of the routing file: its series exist from the start, at 0 (Prometheus's
        rate() needs a first sample before the first event, or the first event is lost)."""
        self.breaker(deployment, state)
        for outcome in ATTEMPT_OUTCOMES:
            self.attempts.labels(deployment=deployment, outcome=outcome)
        self.retries.labels(deployment=deployment)
        for reason in FALLBACK_REASONS:
            self.fallbacks.labels(deployment=deployment, reason=reason)

    def breaker(self, deployment: str, state: BreakerState) -> None:
        self.breaker_state.labels(deployment=deployment).set(BREAKER_VALUE[state])
