"""One request's accounting, owned by one object from the first check to the last record.

The object that takes something gives it back (DESIGN.md: one owner per piece of state): its
place within the rate limits (and in flight), the budget hold, the cost quote of its usage, the
usage the gateway records itself (`usage.reported`: a lost worker's, a cache hit's), the
worker's cancel when the answer did not complete, the hold's release (or the budget lease's
charge given back) when no usage event will settle it, the token window's correction with the
real usage, and the cache store of a completed answer. Used as `async with` in the chat handler:
the exit hands that wind-down to a task of its own (lobe.gateway.drain.WindingDown), so no client
waits for it, a client that leaves cannot cut it short, and a shutdown waits for it. The answer
itself (lobe.gateway.answer) only moves frames.

The embeddings handler (lobe.gateway.embeddings) uses the same owner for the same steps: its
answer is one reply (`embedded`) instead of frames, and no worker is ever cancelled (a worker that
took the request records its usage whether or not the client is still there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType
from typing import TypeVar

from aiohttp import web

from lobe.gateway.answer import Answer
from lobe.gateway.budget import BudgetClient
from lobe.gateway.cache.key import CacheKey
from lobe.gateway.cache.lookup import Lookup
from lobe.gateway.cache.replay import Replay
from lobe.gateway.cache.response_cache import ResponseCache
from lobe.gateway.drain import WindingDown
from lobe.gateway.ratelimit.limiter import Admission, Metered, RateLimiter
from lobe.gateway.settings import GatewaySettings
from lobe.shared.bus import Bus
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.embeddings_schema import EmbeddingsRequest
from lobe.shared.events.chat import Caller, ChatEndpoint, TokenUsage, UsageFrame
from lobe.shared.events.chat_wire import WireDelta
from lobe.shared.events.embeddings import EmbeddingsAnswer
from lobe.shared.events.leases import LeaseCharge
from lobe.shared.events.usage import (
    USAGE_PUBLISH_ATTEMPTS,
    USAGE_REPORTED,
    RequestStatus,
    chat_usage_kind,
    usage_event,
)
from lobe.shared.media_schema import ImagesRequest, SpeechRequest, TranscriptionRequest
from lobe.shared.tokens import estimate_prompt_tokens, estimate_tokens

Body = TypeVar(
    "Body", ChatCompletionRequest, EmbeddingsRequest, ImagesRequest, SpeechRequest, TranscriptionRequest
)


@dataclass(eq=False)
class Accounting:
    settings: GatewaySettings
    rate_limits: RateLimiter
    budget: BudgetClient
    cache: ResponseCache
    bus: Bus
    caller: Caller
    received_at: float  # time.monotonic() when the request arrived
    request_id: str
    # A chat body's endpoint (/v1/responses is a chat request rendered otherwise): its cache
    # namespace and the kind of the usage recorded here.
    endpoint: ChatEndpoint = "chat"
    # What the request took and got, as it goes:
    admission: Admission | None = None
    body: Metered | None = None  # set once it reaches the budget check
    held: bool = False  # a budget hold was taken: settled by a usage event, or released here
    lease: LeaseCharge | None = None  # admitted under a budget lease instead: settled, or given back here
    cache_key: CacheKey | None = None
    lookup: Lookup | None = None  # set with the cache key, once the body is parsed
    replay: Replay | None = None
    answer: Answer | None = None
    usage_recorded_here: bool = False  # by the gateway: a lost worker's, or a cache hit's
    # Embeddings: the cached answer, if any; whether the request went to the workers; the reply.
    cached_embeddings: EmbeddingsAnswer | None = None
    embeddings_sent: bool = False
    embeddings: EmbeddingsAnswer | None = None
    worker_recorded: bool = False  # a media request's worker replied: its usage event settles the hold
    winding_down: WindingDown = field(kw_only=True)  # the app's: where `_wind_down` runs

    async def __aenter__(self) -> Accounting:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # After the answer (an SSE stream has ended; a JSON answer goes out as the handler
        # returns): nothing in it is the client's to wait for, and a task of its own is not
        # cancelled with a handler whose client left.
        self.winding_down.run(self._wind_down())

    async def admit(self, request: web.Request, body: Metered | None = None) -> None:
        """Within the caller's rate limits and requests in flight, or raise 429. Without a body
        (a large one, not parsed yet) the token window waits for `admit_tokens`."""
        rider = None if body is None else self._look_up(request, body).rider()
        self.admission = await self.rate_limits.admit(
            request, self.caller, self.request_id, True, body, rider
        )

    async def admit_tokens(self, request: web.Request, body: Metered) -> None:
        await self.rate_limits.admit_tokens(
            request, self.admission, body, self._look_up(request, body).rider()
        )

    def _look_up(self, request: web.Request, body: Metered) -> Lookup:
        """The body's cache lookup (lobe.gateway.cache.lookup): its Redis read rides on the rate
        limit's run that has the body, when there is one."""
        self.cache_key = self.cache.key_for(request, self.caller, body, self.endpoint)  # None: not cacheable
        self.lookup = self.cache.lookup(self.cache_key)
        return self.lookup

    async def reserve(self, request: web.Request, body: Body) -> Body:
        """Admit within the budget (a hold, or raise), and look the answer up in the cache (the
        replay, if any, in `replay`; an embeddings answer in `cached_embeddings`). The body to
        dispatch: with the output cap the hold covers."""
        self.body = body
        lookup = self.lookup or self._look_up(request, body)
        # What the rate limit's run did not read from Redis is read during the budget reserve
        # rather than after it: one round trip less before the dispatch.
        lookup.start()
        try:
            # Far from a limit, under the caller's budget lease with no round trip; else the exact
            # hold (lobe.gateway.budget).
            self.held, self.lease = await self.budget.admit(self.request_id, self.caller, body)
        except BaseException:  # refused, or the client left: the lookup's answer is not wanted
            lookup.cancel()
            raise
        stored = await lookup.stored()
        if stored is not None and isinstance(body, EmbeddingsRequest):
            self.cached_embeddings = EmbeddingsAnswer.model_validate_json(stored)
        elif stored is not None:
            self.replay = Replay(stored)
        if (self.held or self.lease is not None) and body.output_token_limit is None:
            # The hold covers this many output tokens; the provider must not generate more.
            body = body.model_copy(update={"max_tokens": self.settings.default_max_output_tokens})
            self.body = body
        return body

    def embedded(self, answer: EmbeddingsAnswer | None) -> None:
        """The workers' reply to the embeddings request (None: none came in time). A reply means
        a worker recorded the usage, which settles the hold."""
        self.embeddings_sent = True
        self.embeddings = answer

    def media_answered(self) -> None:
        """A worker replied to the media request: it recorded the usage, which settles the hold."""
        self.worker_recorded = True

    async def priced(self, frame: UsageFrame) -> UsageFrame:
        """The usage frame with billing's cost for it (off the TTFT path: after the last token)."""
        if frame.cost_usd is not None or not self.settings.billing_enabled:
            return frame
        assert isinstance(self.body, ChatCompletionRequest)
        cost = await self.budget.quote(
            self.request_id,
            frame.provider,
            frame.served_model or self.body.model,
            frame.usage,
            cache_hit=self.replay is not None,
            requested=self.body.model,
        )
        return frame if cost is None else frame.model_copy(update={"cost_usd": cost})

    async def _wind_down(self) -> None:
        answer = self.answer
        if answer is not None:
            if not answer.done:
                await answer.dispatch.cancel(answer.end_reason)
            if answer.lost:
                await self._record_lost_usage(answer)
            await self._record_replayed_usage()
        await self._record_cached_embeddings_usage()
        settled = (
            self.usage_recorded_here
            or (answer is not None and answer.dispatch.owner is not None)
            or self.embeddings is not None
            or self.worker_recorded
        )
        if self.held and not settled:
            await self.budget.release(self.request_id, self.caller)
        if self.lease is not None:
            self.budget.finished(self.lease, settled)
        self.rate_limits.settle(self.admission, self._tokens_used())
        if self.cache_key is not None and answer is not None and answer.done and self.replay is None:
            self.cache.store(self.cache_key, answer.frames)
        embeddings = self.embeddings
        if self.cache_key is not None and embeddings is not None and embeddings.error is None:
            self.cache.keep(self.cache_key, embeddings.model_dump_json().encode())

    def _tokens_used(self) -> int | None:
        """What the model really used, for the token window; None when the gateway cannot know
        (the estimate stands)."""
        if self.replay is not None or self.cached_embeddings is not None:
            return 0  # no model ran
        if self.worker_recorded:
            return None  # a media request: priced by its units; its prompt's charge stands
        if self.embeddings_sent:  # the reply's usage; no reply: unknown, the estimate stands
            reply = self.embeddings.usage if self.embeddings is not None else None
            return None if reply is None else reply.total_tokens
        if self.answer is None:
            # Refused by the budget, or gone before the dispatch: no model ran. Before the budget
            # check (a bad body, a refusal) the estimate stands.
            return None if self.body is None else 0
        usage = self.answer.usage
        return None if usage is None else usage.usage.total_tokens

    async def _record_lost_usage(self, answer: Answer) -> None:
        """The worker died mid-answer and never recorded usage: record what the client got."""
        assert isinstance(self.body, ChatCompletionRequest)
        usage = TokenUsage(
            prompt_tokens=estimate_prompt_tokens(self.body),
            completion_tokens=sum(
                estimate_tokens(frame.content or frame.reasoning_content or "")
                for frame in answer.frames
                if isinstance(frame, WireDelta)
            ),
            basis="partial",
            source="estimated",
        )
        await self._record_usage(usage, "unknown", "unknown", "error", "worker_lost")

    async def _record_replayed_usage(self) -> None:
        """A cache hit: no worker records its usage, so the gateway does, marked `cache_hit`
        (billing prices it per its price table: free or at a discount). Once per request."""
        replay = self.replay
        if replay is None or replay.usage is None or self.usage_recorded_here:
            return
        await self._record_usage(replay.usage.usage, replay.provider, "cache", "cache_hit", None)

    async def _record_cached_embeddings_usage(self) -> None:
        """An embeddings cache hit: recorded by the gateway as a chat cache hit is."""
        cached = self.cached_embeddings
        if cached is None or cached.usage is None or self.usage_recorded_here:
            return
        provider = cached.route.provider if cached.route is not None else "unknown"
        await self._record_usage(cached.usage, provider, "cache", "cache_hit", None)

    async def _record_usage(
        self, usage: TokenUsage, provider: str, deployment: str, status: RequestStatus, error: str | None
    ) -> None:
        assert self.body is not None
        event = usage_event(
            self.request_id,
            self.caller,
            self.body,
            self.received_at,
            provider=provider,
            deployment=deployment,
            usage=usage,
            status=status,
            error_code=error,
            kind=chat_usage_kind(self.endpoint) if isinstance(self.body, ChatCompletionRequest) else None,
            lease=self.lease,
        )
        # Its own subject: the gateway's NATS user may not publish a worker's usage.recorded.
        self.usage_recorded_here = await self.bus.publish_fact(
            USAGE_REPORTED, event, attempts=USAGE_PUBLISH_ATTEMPTS
        )
