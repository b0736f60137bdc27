"""What a failed attempt means for routing: whose fault it was and where the request may go next."""

from __future__ import annotations

import random
from typing import Literal

from lobe.chat_worker.policies import RetryPolicy
from lobe.chat_worker.providers.base import ProviderError
from lobe.chat_worker.providers.errors import CONTEXT_LENGTH_EXCEEDED

# request: the request itself was refused (a 400): no other deployment would take it either.
# context: the prompt is longer than the model's window: a larger-context model may take it.
# transient: overloaded, rate-limited, timed out, cut off: the same deployment may answer soon.
# broken: refused our key, lost the model, answered nonsense: only another deployment may answer.
FailureKind = Literal["request", "context", "transient", "broken"]


def classify(exc: ProviderError) -> FailureKind:
    if exc.code == CONTEXT_LENGTH_EXCEEDED:
        return "context"
    if exc.status == 400:
        return "request"
    if exc.retryable and exc.code != "upstream_not_found":
        return "transient"
    return "broken"


def counts_against_deployment(kind: FailureKind) -> bool:
    """Whether the failure says something about the deployment's health (its breaker counts it)."""
    return kind in ("transient", "broken")


def retry_delay(policy: RetryPolicy, retry: int, retry_after_s: float | None, rng: random.Random) -> float:
    """The wait before retry number `retry` (1, 2, ...): the provider's Retry-After when it gave one
    (plus up to 10 % so that workers told the same do not come back in one burst), else exponential
    backoff with jitter, between half and all of base * 2^(retry-1), capped."""
    if retry_after_s is not None:
        return retry_after_s * (1 + 0.1 * rng.random())
    ceiling = min(policy.backoff_max_s, policy.backoff_base_s * 2 ** (retry - 1))
    return rng.uniform(ceiling / 2, ceiling)
