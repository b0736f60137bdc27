"""The gateway's rate limits: per user by tier (requests and tokens), and per client IP.

Per user, one script run per request checks and charges both windows (requests, and tokens on
the request's estimate: prompt plus max_tokens when the client sets one); `settle` replaces the
estimate with the real usage when the answer ends, off the client's path. Per IP, for what comes
before authentication: lobe.gateway.ratelimit.per_ip.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiohttp import web
from redis.exceptions import RedisError

from lobe.gateway.metrics import RATE_LIMITED
from lobe.gateway.ratelimit import headers
from lobe.gateway.ratelimit.config import RateLimitConfig
from lobe.gateway.ratelimit.outage import RedisOutage, saturated
from lobe.gateway.ratelimit.windows import Hit, SlidingWindows, Window, WindowState
from lobe.gateway.redis_pool import PoolExhausted
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.chat import Caller
from lobe.shared.openai_errors import ApiError
from lobe.shared.tokens import estimate_prompt_tokens

log = logging.getLogger(__name__)
REDIS_ERRORS = (RedisError, OSError, TimeoutError)


def token_estimate(body: ChatCompletionRequest) -> int:
    return max(estimate_prompt_tokens(body) + (body.output_token_limit or 0), 1)


@dataclass(frozen=True)
class Admission:
    """A request charged to its user's token window, to correct with its real usage."""

    request_id: str
    tokens: Window | None


async def hit_or_fail_mode(
    windows: SlidingWindows, outage: RedisOutage, entry_id: str, limits: list[Window], charge: bool = True
) -> Hit | None:
    """The script's answer, or None when Redis is away and the fail mode admits (else 503)."""
    if not outage.skip():
        try:
            hit = await windows.hit(entry_id, limits, charge)
        except PoolExhausted:
            raise saturated() from None
        except REDIS_ERRORS as exc:
            outage.failed(exc)
        else:
            outage.recovered()
            return hit
    outage.unchecked()
    return None


def refusal(state: WindowState, unit: str, scope: str, extra: dict[str, str]) -> ApiError:
    window = state.window
    if window.weight > window.limit:
        message = (
            f"Request too large: it needs about {window.weight} {unit} and {scope} allows "
            f"{window.limit} {unit} per {window.window_s} s. Send a shorter prompt or a lower max_tokens."
        )
        wait: dict[str, str] = {}
    else:
        message = (
            f"Rate limit reached on {unit} per {window.window_s} s ({scope}): limit {window.limit}, "
            f"used {state.used}, requested {window.weight}. "
            f"Please try again in {headers.duration(state.frees_in_ms)}."
        )
        wait = headers.retry_after(state.frees_in_ms)
    return ApiError(429, message, "rate_limit_exceeded", headers={**extra, **wait})


class RateLimiter:
    """Per user, by tier."""

    def __init__(
        self, windows: SlidingWindows, config: RateLimitConfig, fail_mode: str, enabled: bool = True
    ) -> None:
        self.windows = windows
        self.config = config
        self.enabled = enabled
        self.outage = RedisOutage(fail_mode)
        self._settling: set[asyncio.Task[None]] = set()

    async def admit(
        self, request: web.Request, caller: Caller, request_id: str, body: ChatCompletionRequest | None = None
    ) -> Admission | None:
        """Charge the request to its user's windows or raise 429; the answer's headers are set."""
        if not self.enabled:
            return None
        limits = self.config.limits_for(caller)
        prefix = f"lobe:rl:{{u:{caller.user_id}}}"
        windows: dict[str, Window] = {}
        if limits.requests is not None:
            windows["requests"] = Window(f"{prefix}:requests", limits.requests, limits.window_s)
        if limits.tokens is not None and body is not None:
            estimate = token_estimate(body)
            windows["tokens"] = Window(f"{prefix}:tokens", limits.tokens, limits.window_s, estimate)
        if not windows:
            return None
        hit = await hit_or_fail_mode(self.windows, self.outage, request_id, list(windows.values()))
        if hit is None:
            return None
        states = dict(zip(windows, hit.states, strict=True))
        answer_headers: dict[str, str] = {}
        if "requests" in states:
            answer_headers |= headers.standard(states["requests"])
        for unit, state in states.items():
            answer_headers |= headers.openai(state, unit)
        request[headers.RATE_HEADERS] = answer_headers
        if hit.refused is not None:
            unit = next(unit for unit, window in windows.items() if window is hit.refused)
            RATE_LIMITED.labels(limit=unit).inc()
            raise refusal(states[unit], unit, f"tier {limits.tier}", answer_headers)
        return Admission(request_id, windows.get("tokens"))

    def settle(self, admission: Admission | None, tokens_used: int | None) -> None:
        """Replace the token estimate with the real usage (None: unknown, the estimate stands).
        In the background: the client has its answer already."""
        if admission is None or admission.tokens is None or tokens_used is None:
            return
        task = asyncio.create_task(self._correct(admission.request_id, admission.tokens, tokens_used))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _correct(self, request_id: str, window: Window, tokens_used: int) -> None:
        try:
            await self.windows.correct(request_id, window.key, window.weight, tokens_used)
        except REDIS_ERRORS as exc:  # the estimate stands; it leaves the window within window_s
            log.warning("token usage not corrected: %r", exc, extra={"request_id": request_id})

    async def close(self) -> None:
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)
