"""Business metrics: turns usage and billing facts into Prometheus series.

Pure aggregation, no I/O: the router hands decoded events (or raw bodies) in, the ops server
reads `registry` out. Labels are bounded on purpose: there is no user_id or request_id label,
since one series per user would grow without limit and per-user spend is billing's report, not
a fleet metric.

`lobe_chat_requests_total`'s `status` is `success` for a completed answer, `error` for a failed
one, `cancelled` when the client left and `cache_hit` for an answer from the response cache. The
usage events keep their own values (`ok`, ...): STATUS maps them. Its `endpoint` and the duration
histogram's are the usage kind (chat, embedding, image, speech, transcription, response): every
request of every endpoint is counted there, so a sum over `endpoint` is what the series counted
before the label came. Every status series of a provider/model/endpoint triple (and both token
types of a provider) is created at 0 the first time the triple is seen, so a ratio such as the
success rate sees every series from the same first sample on (Prometheus's rate() ignores
whatever a series holds at its first scrape); an endpoint never used has no series at all.
Media requests also count their priced units (`lobe_media_units_total`), created on first use.
"""

from __future__ import annotations

import logging
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import ValidationError

from lobe.metrics.dedupe import RecentIds
from lobe.shared.bounded_labels import BoundedLabels
from lobe.shared.events.billing import LimitExceeded, LimitKind
from lobe.shared.events.units import MediaUnits
from lobe.shared.events.usage import RequestStatus, UsageRecorded

log = logging.getLogger(__name__)

STATUS: dict[RequestStatus, str] = {
    "ok": "success",
    "error": "error",
    "cancelled": "cancelled",
    "cache_hit": "cache_hit",
}
TOKEN_TYPES = ("input", "output")

# Time to first token: interactive, so finer at the low end.
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 60.0)
DURATION_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class UsageMetrics:
    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        max_models: int = 500,
        dedupe_window: int = 50_000,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.labels = BoundedLabels(max_models)
        self.recent = RecentIds(dedupe_window)
        self.requests = Counter(
            "lobe_chat_requests",
            "Requests that ended, by endpoint (the usage kind) and outcome: success, error, "
            "cancelled, cache_hit.",
            ["provider", "model", "endpoint", "status"],
            registry=self.registry,
        )
        self.message_tokens = Counter(
            "lobe_message_tokens",
            "Tokens of chat requests by provider: input (prompt, cached included) and output.",
            ["type", "provider"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "lobe_chat_tokens",
            "Tokens used by chat requests (cached is a subset of prompt).",
            ["provider", "model", "kind"],
            registry=self.registry,
        )
        self.ttft = Histogram(
            "lobe_chat_ttft_seconds",
            "Time to first token of chat requests that produced one.",
            ["provider", "model"],
            buckets=TTFT_BUCKETS,
            registry=self.registry,
        )
        self.duration = Histogram(
            "lobe_chat_duration_seconds",
            "Total duration of requests, by endpoint (the usage kind).",
            ["provider", "model", "endpoint"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.media_units = Counter(
            "lobe_media_units",
            "Priced units of media requests: images, characters (speech input), audio_seconds (transcribed).",
            ["provider", "model", "unit"],
            registry=self.registry,
        )
        self.invalid = Counter(
            "lobe_usage_events_invalid",
            "Usage events that failed validation and were dropped.",
            registry=self.registry,
        )
        self.duplicates = Counter(
            "lobe_usage_events_duplicate",
            "Redelivered usage events recognised and not counted again.",
            registry=self.registry,
        )
        self.limit_exceeded = Counter(
            "lobe_billing_limit_exceeded",
            "Times a user hit a plan limit, by kind of limit.",
            ["limit"],
            registry=self.registry,
        )
        for limit in get_args(LimitKind):
            self.limit_exceeded.labels(limit)
        self._seen: set[tuple[str, str, str]] = set()
        self._seen_providers: set[str] = set()

    def observe_usage_bytes(self, body: bytes) -> UsageRecorded | None:
        """Decode and count one `usage.recorded` body; a bad one is counted as invalid, not raised.

        Raising would make JetStream redeliver a message that can never become valid.
        """
        try:
            event = UsageRecorded.decode(body)
        except ValidationError as exc:
            self.invalid.inc()
            log.warning("invalid usage event dropped", extra={"errors": exc.errors(include_url=False)})
            return None
        self.observe_usage(event)
        return event

    def observe_usage(self, event: UsageRecorded) -> bool:
        """Count one usage event; False when it is a redelivery already counted."""
        if not self.recent.first_time(event.request_id):
            self.duplicates.inc()
            return False
        provider, model = self.labels.model_labels(event.provider, event.model)
        endpoint = event.kind
        self._first_sight(provider, model, endpoint)
        self.requests.labels(provider, model, endpoint, STATUS[event.status]).inc()
        usage = event.usage
        self.message_tokens.labels("input", provider).inc(usage.prompt_tokens)
        self.message_tokens.labels("output", provider).inc(usage.completion_tokens)
        tokens = self.tokens
        if usage.prompt_tokens:
            tokens.labels(provider, model, "prompt").inc(usage.prompt_tokens)
        if usage.completion_tokens:
            tokens.labels(provider, model, "completion").inc(usage.completion_tokens)
        if usage.cached_tokens:
            tokens.labels(provider, model, "cached").inc(usage.cached_tokens)
        if event.ttft_ms is not None:
            self.ttft.labels(provider, model).observe(event.ttft_ms / 1000)
        self.duration.labels(provider, model, endpoint).observe(event.duration_ms / 1000)
        if event.units is not None:
            self._count_units(provider, model, event.units)
        return True

    def _count_units(self, provider: str, model: str, units: MediaUnits) -> None:
        for unit, amount in (
            ("images", units.images),
            ("characters", units.characters),
            ("audio_seconds", units.audio_seconds),
        ):
            if amount:
                self.media_units.labels(provider, model, unit).inc(amount)

    def _first_sight(self, provider: str, model: str, endpoint: str) -> None:
        """Create the triple's series at 0 (see the module's docstring)."""
        if (provider, model, endpoint) not in self._seen:
            self._seen.add((provider, model, endpoint))
            for status in STATUS.values():
                self.requests.labels(provider, model, endpoint, status)
        if provider not in self._seen_providers:
            self._seen_providers.add(provider)
            for kind in TOKEN_TYPES:
                self.message_tokens.labels(kind, provider)

    def observe_limit_exceeded(self, event: LimitExceeded) -> None:
        self.limit_exceeded.labels(event.limit).inc()
