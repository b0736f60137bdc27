"""Whose fault a failure is, when the same deployment is retried, and after how long."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from lobe.chat_worker.policies import RetryPolicy
from lobe.chat_worker.providers.base import ProviderError
from lobe.chat_worker.providers.errors import upstream_error
from lobe.chat_worker.providers.retry_after import retry_after_s
from lobe.chat_worker.routing.failures import classify, retry_delay


@pytest.mark.parametrize(
    ("status", "code", "message", "kind"),
    [
        (400, None, "Unsupported value: 'temperature'", "request"),
        (400, "context_length_exceeded", "This model's maximum context length is 8192 tokens.", "context"),
        (400, None, "prompt is too long: 208310 tokens > 200000 maximum", "context"),
        (
            400,
            None,
            "The input token count (1048577) exceeds the maximum number of tokens allowed (1048576).",
            "context",
        ),
        (413, None, "Request exceeds the maximum allowed number of bytes.", "request"),
        (429, "rate_limit_exceeded", "slow down", "transient"),
        (500, None, "boom", "transient"),
        (529, "overloaded_error", "Overloaded", "transient"),
        (408, None, "timeout", "transient"),
        (401, None, "bad key", "broken"),
        (404, None, "no such model", "broken"),
        (402, None, "payment required", "broken"),
    ],
)
def test_provider_failures_are_classified_by_who_can_fix_them(
    status: int, code: str | None, message: str, kind: str
) -> None:
    assert classify(upstream_error("p", status, code, message)) == kind


def test_a_failure_after_output_started_keeps_its_started_flag_for_the_loop() -> None:
    error = ProviderError("p", 502, "upstream_disconnected", "cut", retryable=False, started=True)
    assert classify(error) == "broken"


def test_retry_after_is_honoured_never_early_and_at_most_ten_percent_late() -> None:
    rng = random.Random(1)
    delays = [retry_delay(RetryPolicy(), 1, 2.0, rng) for _ in range(1000)]
    assert min(delays) >= 2.0
    assert max(delays) <= 2.2


def test_backoff_doubles_per_retry_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(backoff_base_s=0.5, backoff_max_s=3.0)
    rng = random.Random(2)
    for retry, (low, high) in enumerate(
        [(0.25, 0.5), (0.5, 1.0), (1.0, 2.0), (1.5, 3.0), (1.5, 3.0)], start=1
    ):
        delays = [retry_delay(policy, retry, None, rng) for _ in range(500)]
        assert low <= min(delays)
        assert max(delays) <= high
        assert max(delays) - min(delays) > (high - low) / 2  # jittered, not fixed


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "1"}, 1.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),  # OpenAI's finer one wins
        ({"retry-after": "Wed, 21 Oct 2026 07:28:30 GMT"}, 30.0),
        ({"retry-after": "Wed, 21 Oct 2026 07:27:00 GMT"}, 0.0),  # already past
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_read_as_seconds_milliseconds_or_an_http_date(
    headers: dict[str, str], seconds: float | None
) -> None:
    now = datetime(2026, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert retry_after_s(headers, now) == seconds
