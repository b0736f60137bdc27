"""The gateway's rate limits: per user by tier (requests, tokens and requests in flight), and per
client IP (lobe.gateway.ratelimit.per_ip).

A large body is parsed only after the rate limit, so a caller over their limit cannot make the
gateway parse bodies of up to MAX_BODY_BYTES (issue 22); that takes two steps:

1. `admit`, before the body is read: the request window and, for a chat request, a place under
   the tier's cap on requests in flight, in one script run.
2. `admit_tokens`, after the parse: the token window, on the request's estimate (prompt plus
   max_tokens when the client sets one), which only the parsed body gives. When it has no room
   the first step is undone (the request's entry weighs 0, its place is given back) before the
   429, so a request refused for tokens costs no request either: every window stays exact. In
   between, a concurrent request can find the request window fuller than it will be: a refusal
   that a moment later would pass, never an admission past a limit.

A small body (lobe.gateway.chat.PARSE_FIRST_BYTES) costs less to parse than that second round
trip to Redis, so it is parsed first and `admit(body=...)` charges all three in one run.

The run that has the parsed body (`admit(body=...)`, or `admit_tokens`) carries the response
cache's lookup of it (a `Rider`, lobe.gateway.cache.lookup) in its round trip: a cacheable request
costs one round trip to Redis before its dispatch, not two. The lookup's answer is read only
once the request is admitted: a refused request is never served from the cache (the limits come
first, as at LiteLLM's and Portkey's gateways: a cache hit still counts as a request).

`settle` ends every admission however the request ends (answer, error, client gone): the token
estimate is replaced with the real usage and the place in flight given back, in one script run,
off the client's path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass

from aiohttp import web

from lobe.gateway.metrics import RATE_LIMITED
from lobe.gateway.ratelimit import headers
from lobe.gateway.ratelimit.config import RateLimitConfig, UserLimits
from lobe.gateway.ratelimit.leases import Leases
from lobe.gateway.ratelimit.outage import RedisOutage, saturated
from lobe.gateway.ratelimit.windows import Cap, Correction, Hit, Rider, SlidingWindows, Window, WindowState
from lobe.gateway.redis_pool import REDIS_ERRORS, PoolExhausted
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.embeddings_schema import EmbeddingsRequest
from lobe.shared.events.chat import Caller
from lobe.shared.media_schema import MediaRequest
from lobe.shared.openai_errors import ApiError
from lobe.shared.token_ceiling import prompt_token_ceiling

__all__ = ["REDIS_ERRORS", "Admission", "RateLimiter", "hit_or_fail_mode", "refusal"]

log = logging.getLogger(__name__)


# What the token window charges for: a chat request, an embeddings request (its inputs), or a
# media request (its prompt text; its units are the budget's).
Metered = ChatCompletionRequest | EmbeddingsRequest | MediaRequest


def token_estimate(body: Metered) -> int:
    """What the token window charges up front: the same upper bound as the budget hold
    (lobe.shared.token_ceiling: every byte the prompt sends), corrected by the real usage when the
    answer ends; a lighter estimate would let a tool call's arguments slip past the window."""
    return max(prompt_token_ceiling(body) + (body.output_token_limit or 0), 1)


@dataclass
class Admission:
    """What one request holds in its user's limits, until `RateLimiter.settle`."""

    request_id: str
    limits: UserLimits
    prefix: str  # the user's keys
    requests: WindowState | None = None  # charged by `admit`
    cap: Cap | None = None  # a place in flight, taken by `admit`
    tokens: Window | None = None  # charged by `admit_tokens`, on the estimate
    settled: bool = False


async def hit_or_fail_mode(
    windows: SlidingWindows,
    outage: RedisOutage,
    entry_id: str,
    limits: list[Window],
    charge: bool = True,
    cap: Cap | None = None,
    rider: Rider | None = None,
) -> Hit | None:
    """The script's answer, or None when Redis is away and the fail mode admits (else 503)."""
    if not outage.skip():
        try:
            hit = await windows.hit(entry_id, limits, charge, cap, rider)
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


def cap_refusal(cap: Cap, tier: str, extra: dict[str, str]) -> ApiError:
    # When a place frees depends on answers in flight, not on a clock: a second is a fair wait.
    message = (
        f"Too many requests in flight: tier {tier} allows {cap.limit} at once per user. "
        "Wait for an answer to finish, then retry."
    )
    return ApiError(429, message, "rate_limit_exceeded", headers={**extra, **headers.retry_after(1000)})


class RateLimiter:
    """Per user, by tier."""

    def __init__(
        self,
        windows: SlidingWindows,
        config: RateLimitConfig,
        fail_mode: str,
        enabled: bool = True,
        lease_s: float = 30.0,
    ) -> None:
        self.windows = windows
        self.config = config
        self.enabled = enabled
        self.outage = RedisOutage(fail_mode)
        self.leases = Leases(windows, lease_s)
        self._settling: set[asyncio.Task[None]] = set()

    async def admit(
        self,
        request: web.Request,
        caller: Caller,
        request_id: str,
        in_flight: bool = False,
        body: Metered | None = None,
        rider: Rider | None = None,
    ) -> Admission | None:
        """Charge the request window (`in_flight`: and take a place under the cap; with the parsed
        `body`: and the token window, all in one run) or raise 429; the answer's headers are set.
        `rider`: what rides on the run's round trip (the body's cache lookup)."""
        if not self.enabled:
            return None
        limits = self.config.limits_for(caller)
        admission = Admission(request_id, limits, f"lobe:rl:{{u:{caller.user_id}}}")
        windows: dict[str, Window] = {}
        if limits.requests is not None:
            windows["requests"] = Window(f"{admission.prefix}:requests", limits.requests, limits.window_s)
        if body is not None and limits.tokens is not None:
            windows["tokens"] = self._token_window(admission, limits.tokens, body)
        cap = None
        if in_flight and limits.concurrent is not None:
            cap = Cap(f"{admission.prefix}:in_flight", limits.concurrent, int(self.leases.lease_s * 1000))
        if not windows and cap is None:
            return admission
        hit = await hit_or_fail_mode(
            self.windows, self.outage, request_id, list(windows.values()), cap=cap, rider=rider
        )
        if hit is None:
            return admission
        states = dict(zip(windows, hit.states, strict=True))
        answer_headers: dict[str, str] = {}
        if "requests" in states:
            answer_headers |= headers.standard(states["requests"])
        for unit, state in states.items():
            answer_headers |= headers.openai(state, unit)
        request[headers.RATE_HEADERS] = answer_headers
        if isinstance(hit.refused, Cap):
            RATE_LIMITED.labels(limit="concurrent").inc()
            raise cap_refusal(hit.refused, limits.tier, answer_headers)
        if hit.refused is not None:
            unit = next(unit for unit, window in windows.items() if window is hit.refused)
            RATE_LIMITED.labels(limit=unit).inc()
            raise refusal(states[unit], unit, f"tier {limits.tier}", answer_headers)
        admission.requests = states.get("requests")
        admission.tokens = windows.get("tokens")
        if cap is not None:
            admission.cap = cap
            self.leases.hold(request_id, cap)
        return admission

    @staticmethod
    def _token_window(admission: Admission, limit: int, body: Metered) -> Window:
        return Window(f"{admission.prefix}:tokens", limit, admission.limits.window_s, token_estimate(body))

    async def admit_tokens(
        self, request: web.Request, admission: Admission | None, body: Metered, rider: Rider | None = None
    ) -> None:
        """Charge the token window on the parsed body's estimate, or undo `admit` and raise 429.
        `rider`: as `admit`'s (it goes alone when there is nothing to charge)."""
        if admission is None or admission.limits.tokens is None or admission.tokens is not None:
            return
        limits = admission.limits
        window = self._token_window(admission, admission.limits.tokens, body)
        hit = await hit_or_fail_mode(self.windows, self.outage, admission.request_id, [window], rider=rider)
        if hit is None:
            return
        [state] = hit.states
        answer_headers = request.get(headers.RATE_HEADERS, {}) | headers.openai(state, "tokens")
        request[headers.RATE_HEADERS] = answer_headers
        if hit.refused is not None:
            RATE_LIMITED.labels(limit="tokens").inc()
            await self._undo(admission)
            if admission.requests is not None:  # what the request window holds once undone
                undone = dataclasses.replace(admission.requests, used=admission.requests.used - 1)
                answer_headers |= headers.standard(undone) | headers.openai(undone, "requests")
            raise refusal(state, "tokens", f"tier {limits.tier}", answer_headers)
        admission.tokens = window

    async def _undo(self, admission: Admission) -> None:
        """A refused request costs nothing: its request entry weighs 0, its place is given back."""
        admission.settled = True
        self.leases.drop(admission.request_id)
        charged = [Correction(admission.requests.window.key, 1, 0)] if admission.requests else []
        try:
            await self.windows.settle(admission.request_id, charged, admission.cap)
        except REDIS_ERRORS as exc:  # the entry leaves its window, the lease runs out
            log.warning("refused request not undone: %r", exc, extra={"request_id": admission.request_id})

    def settle(self, admission: Admission | None, tokens_used: int | None) -> None:
        """The request has ended: replace the token estimate with the real usage (None: unknown,
        the estimate stands) and give back its place in flight. Once per admission, in the
        background: the client has its answer already."""
        if admission is None or admission.settled:
            return
        admission.settled = True
        self.leases.drop(admission.request_id)
        corrections = []
        if admission.tokens is not None and tokens_used is not None:
            corrections.append(Correction(admission.tokens.key, admission.tokens.weight, tokens_used))
        if not corrections and admission.cap is None:
            return
        task = asyncio.create_task(self._settle(admission, corrections))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle(self, admission: Admission, corrections: list[Correction]) -> None:
        try:
            await self.windows.settle(admission.request_id, corrections, admission.cap)
        except REDIS_ERRORS as exc:  # the estimate leaves its window, the lease runs out
            log.warning("request not settled: %r", exc, extra={"request_id": admission.request_id})

    async def close(self) -> None:
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)
        await self.leases.close()
