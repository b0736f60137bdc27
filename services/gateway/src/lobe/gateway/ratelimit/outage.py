"""When the state Redis cannot be reached: RATE_LIMIT_FAIL_MODE decides, never a 500.

`open` (default) admits the request unchecked: an outage of the limiter does not become an outage
of the API, and spend stays bounded by billing's budget admission, which does not depend on
Redis. `closed` refuses with 503 and Retry-After: for deployments where the limits protect a
provider quota that must never be exceeded.

After a failure Redis is left alone for RETRY_AFTER_S (requests meanwhile get the fail mode at
once, instead of each waiting for a timeout against a server that is down); the first request
after that asks again, and limits are exact again from the first answer. Counters live in Redis
only, so what a restarted Redis lost is forgotten: each window starts over from empty.
"""

from __future__ import annotations

import logging
import time

from lobe.gateway.metrics import RATE_LIMIT_UNCHECKED
from lobe.gateway.redis_pool import PoolExhausted
from lobe.shared.openai_errors import ApiError

log = logging.getLogger(__name__)
RETRY_AFTER_S = 1.0


class RedisOutage:
    def __init__(self, fail_mode: str, what: str = "rate limits") -> None:
        self.fail_mode = fail_mode
        self.what = what
        self.down_since: float | None = None
        self.retry_at = 0.0

    def skip(self) -> bool:
        """Whether to apply the fail mode without asking Redis (it failed a moment ago)."""
        return time.monotonic() < self.retry_at

    def failed(self, exc: BaseException) -> None:
        if isinstance(exc, PoolExhausted):
            return
        now = time.monotonic()
        self.retry_at = now + RETRY_AFTER_S
        if self.down_since is None:
            self.down_since = now
            log.error("%s: Redis unreachable (%r); failing %s", self.what, exc, self.fail_mode)

    def recovered(self) -> None:
        if self.down_since is not None:
            log.warning("%s: Redis back after %.1f s", self.what, time.monotonic() - self.down_since)
            self.down_since = None

    def unchecked(self) -> None:
        """The request could not be checked: admit it (open) or raise 503 (closed)."""
        if self.fail_mode == "open":
            RATE_LIMIT_UNCHECKED.labels(outcome="admitted").inc()
            return
        RATE_LIMIT_UNCHECKED.labels(outcome="refused").inc()
        raise ApiError(
            503,
            "Rate limits cannot be checked right now; retry shortly.",
            "rate_limit_unavailable",
            headers={"Retry-After": "1"},
        )


def saturated() -> ApiError:
    """Every Redis connection stayed busy for REDIS_POOL_WAIT_S: refuse this request, unchecked
    requests would let a burst through."""
    RATE_LIMIT_UNCHECKED.labels(outcome="refused").inc()
    return ApiError(
        503, "The gateway is saturated; retry shortly.", "gateway_saturated", headers={"Retry-After": "1"}
    )
