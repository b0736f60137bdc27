from __future__ import annotations

from lobe.metrics.aggregation import UsageMetrics
from lobe.metrics.dedupe import RecentIds
from lobe.shared.bounded_labels import OTHER
from lobe.shared.events.billing import LimitExceeded
from lobe.shared.events.chat import TokenUsage
from lobe.shared.events.units import MediaUnits

from .events import usage_event

LABELS = {"provider": "openai", "model": "gpt-4o-mini"}
CHAT = {**LABELS, "endpoint": "chat"}  # the requests counter's and the duration histogram's


def sample(metrics: UsageMetrics, name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.registry.get_sample_value(name, labels or {}) or 0.0


def test_usage_event_counts_request_tokens_and_latencies() -> None:
    metrics = UsageMetrics()
    assert metrics.observe_usage(usage_event()) is True

    assert sample(metrics, "lobe_chat_requests_total", {**CHAT, "status": "success"}) == 1
    assert sample(metrics, "lobe_message_tokens_total", {"provider": "openai", "type": "input"}) == 12
    assert sample(metrics, "lobe_message_tokens_total", {"provider": "openai", "type": "output"}) == 30
    assert sample(metrics, "lobe_chat_tokens_total", {**LABELS, "kind": "prompt"}) == 12
    assert sample(metrics, "lobe_chat_tokens_total", {**LABELS, "kind": "completion"}) == 30
    assert sample(metrics, "lobe_chat_tokens_total", {**LABELS, "kind": "cached"}) == 4
    assert sample(metrics, "lobe_chat_ttft_seconds_sum", LABELS) == 0.18
    assert sample(metrics, "lobe_chat_ttft_seconds_bucket", {**LABELS, "le": "0.25"}) == 1
    assert sample(metrics, "lobe_chat_ttft_seconds_bucket", {**LABELS, "le": "0.1"}) == 0
    assert sample(metrics, "lobe_chat_duration_seconds_sum", CHAT) == 1.5


def test_request_without_first_token_is_timed_but_not_in_ttft() -> None:
    metrics = UsageMetrics()
    metrics.observe_usage(
        usage_event(status="error", error_code="upstream_timeout", ttft_ms=None, duration_ms=30_000)
    )
    assert sample(metrics, "lobe_chat_requests_total", {**CHAT, "status": "error"}) == 1
    assert sample(metrics, "lobe_chat_ttft_seconds_count", LABELS) == 0
    assert sample(metrics, "lobe_chat_duration_seconds_count", CHAT) == 1


def test_statuses_are_counted_apart_with_ok_reported_as_success() -> None:
    metrics = UsageMetrics()
    for i, status in enumerate(["ok", "ok", "error", "cancelled", "cache_hit"]):
        metrics.observe_usage(usage_event(f"r{i}", status=status))
    assert sample(metrics, "lobe_chat_requests_total", {**CHAT, "status": "success"}) == 2
    for status in ("error", "cancelled", "cache_hit"):
        assert sample(metrics, "lobe_chat_requests_total", {**CHAT, "status": status}) == 1
    statuses = {
        s.labels["status"] for f in metrics.registry.collect() for s in f.samples if "status" in s.labels
    }
    assert statuses == {"success", "error", "cancelled", "cache_hit"}


def test_first_event_of_a_pair_creates_all_its_status_and_token_series_at_zero() -> None:
    metrics = UsageMetrics()
    metrics.observe_usage(usage_event(status="error", usage=TokenUsage(prompt_tokens=5, completion_tokens=0)))
    assert metrics.registry.get_sample_value("lobe_chat_requests_total", {**CHAT, "status": "success"}) == 0
    assert metrics.registry.get_sample_value("lobe_chat_requests_total", {**CHAT, "status": "error"}) == 1
    for status in ("cancelled", "cache_hit"):
        assert metrics.registry.get_sample_value("lobe_chat_requests_total", {**CHAT, "status": status}) == 0
    output = {"provider": "openai", "type": "output"}
    assert metrics.registry.get_sample_value("lobe_message_tokens_total", output) == 0


def test_each_endpoint_is_counted_apart_and_only_endpoints_seen_have_series() -> None:
    metrics = UsageMetrics()
    metrics.observe_usage(usage_event("c1"))
    metrics.observe_usage(usage_event("e1", kind="embedding", status="error"))
    metrics.observe_usage(usage_event("r1", kind="response"))
    assert sample(metrics, "lobe_chat_requests_total", {**CHAT, "status": "success"}) == 1
    embedding = {**LABELS, "endpoint": "embedding"}
    assert (
        metrics.registry.get_sample_value("lobe_chat_requests_total", {**embedding, "status": "error"}) == 1
    )
    assert (
        metrics.registry.get_sample_value("lobe_chat_requests_total", {**embedding, "status": "success"}) == 0
    )
    response = {**LABELS, "endpoint": "response"}
    assert sample(metrics, "lobe_chat_duration_seconds_count", response) == 1
    endpoints = {
        s.labels["endpoint"] for f in metrics.registry.collect() for s in f.samples if "endpoint" in s.labels
    }
    assert endpoints == {"chat", "embedding", "response"}  # no image, speech, transcription series
    # Summing the endpoint away gives what the series counted before it had the label.
    total = sum(
        s.value
        for f in metrics.registry.collect()
        for s in f.samples
        if s.name == "lobe_chat_requests_total" and s.labels["status"] == "success"
    )
    assert total == 2


def test_media_units_are_counted_by_unit_once_used() -> None:
    metrics = UsageMetrics()
    tokens = TokenUsage(prompt_tokens=3, completion_tokens=0)
    metrics.observe_usage(
        usage_event("i1", kind="image", usage=tokens, units=MediaUnits(images=3, image_size="256x256"))
    )
    metrics.observe_usage(usage_event("s1", kind="speech", usage=tokens, units=MediaUnits(characters=120)))
    metrics.observe_usage(
        usage_event("t1", kind="transcription", usage=tokens, units=MediaUnits(audio_seconds=2.5))
    )
    metrics.observe_usage(
        usage_event("t2", kind="transcription", usage=tokens, units=MediaUnits(audio_seconds=1.5))
    )
    assert sample(metrics, "lobe_media_units_total", {**LABELS, "unit": "images"}) == 3
    assert sample(metrics, "lobe_media_units_total", {**LABELS, "unit": "characters"}) == 120
    assert sample(metrics, "lobe_media_units_total", {**LABELS, "unit": "audio_seconds"}) == 4.0
    assert (
        sample(
            metrics, "lobe_chat_requests_total", {**LABELS, "endpoint": "transcription", "status": "success"}
        )
        == 2
    )


def test_chat_alone_creates_no_media_unit_series() -> None:
    metrics = UsageMetrics()
    metrics.observe_usage(usage_event())
    assert [
        s for f in metrics.registry.collect() for s in f.samples if s.name == "lobe_media_units_total"
    ] == []


def test_every_limit_kind_is_exported_before_any_limit_is_hit() -> None:
    metrics = UsageMetrics()
    for limit in ("cost", "tokens", "requests"):
        assert metrics.registry.get_sample_value("lobe_billing_limit_exceeded_total", {"limit": limit}) == 0


def test_redelivered_event_is_counted_once() -> None:
    metrics = UsageMetrics()
    event = usage_event("dup")
    assert metrics.observe_usage(event) is True
    assert metrics.observe_usage(event) is False
    assert sample(metrics, "lobe_chat_requests_total", {**CHAT, "status": "success"}) == 1
    assert sample(metrics, "lobe_chat_tokens_total", {**LABELS, "kind": "completion"}) == 30
    assert sample(metrics, "lobe_usage_events_duplicate_total") == 1


def test_invalid_body_is_counted_and_not_raised() -> None:
    metrics = UsageMetrics()
    assert metrics.observe_usage_bytes(b"not json") is None
    assert (
        metrics.observe_usage_bytes(usage_event().encode().replace(b'"status":"ok"', b'"status":"?"')) is None
    )
    assert sample(metrics, "lobe_usage_events_invalid_total") == 2
    assert sample(metrics, "lobe_chat_requests_total", {**CHAT, "status": "success"}) == 0


def test_valid_body_round_trips_through_bytes() -> None:
    metrics = UsageMetrics()
    event = metrics.observe_usage_bytes(usage_event("bytes").encode())
    assert event is not None
    assert event.request_id == "bytes"
    assert sample(metrics, "lobe_chat_requests_total", {**CHAT, "status": "success"}) == 1


def test_models_past_the_limit_are_folded_into_other() -> None:
    metrics = UsageMetrics(max_models=2)
    for i, model in enumerate(["a", "b", "c", "d", "a"]):
        metrics.observe_usage(
            usage_event(f"r{i}", model=model, usage=TokenUsage(prompt_tokens=1, completion_tokens=1))
        )
    requests = {"provider": "openai", "endpoint": "chat", "status": "success"}
    assert sample(metrics, "lobe_chat_requests_total", {**requests, "model": "a"}) == 2
    assert sample(metrics, "lobe_chat_requests_total", {**requests, "model": "b"}) == 1
    assert sample(metrics, "lobe_chat_requests_total", {**requests, "model": OTHER}) == 2
    assert sample(metrics, "lobe_chat_requests_total", {**requests, "model": "c"}) == 0


def test_no_series_carries_a_user_id() -> None:
    metrics = UsageMetrics()
    metrics.observe_usage(usage_event(user_id="secret-user"))
    for family in metrics.registry.collect():
        for s in family.samples:
            assert "user_id" not in s.labels
            assert "secret-user" not in s.labels.values()


def test_limit_exceeded_is_counted_by_limit_kind() -> None:
    metrics = UsageMetrics()
    for limit in ("cost", "cost", "tokens"):
        metrics.observe_limit_exceeded(
            LimitExceeded(request_id="r", user_id="u", limit=limit, period="2026-11", used=2, allowed=1)
        )
    assert sample(metrics, "lobe_billing_limit_exceeded_total", {"limit": "cost"}) == 2
    assert sample(metrics, "lobe_billing_limit_exceeded_total", {"limit": "tokens"}) == 1


def test_recent_ids_forget_the_oldest_past_capacity() -> None:
    recent = RecentIds(2)
    assert [recent.first_time(k) for k in ("a", "b", "a", "c")] == [True, True, False, True]
    # "b" was the least recently seen when "c" arrived, so it was evicted; "a" was kept.
    assert recent.first_time("a") is False
    assert recent.first_time("b") is True
    assert len(recent) == 2


def test_dedupe_window_zero_counts_every_delivery() -> None:
    metrics = UsageMetrics(dedupe_window=0)
    metrics.observe_usage(usage_event("same"))
    metrics.observe_usage(usage_event("same"))
    assert sample(metrics, "lobe_chat_requests_total", {**CHAT, "status": "success"}) == 2
