"""Budget admission and cost quotes: the gateway's half of the protocol with billing.

Before dispatch the gateway reserves the request's worst case (the prompt's token ceiling,
lobe.shared.token_ceiling, plus the output cap; billing prices it at the dearest deployment the
route may reach); billing admits or refuses atomically, whatever the number of gateway
replicas. The usage event settles the hold; a request that never reached a worker releases it.

When billing does not answer, `BUDGET_FAIL_MODE` decides: `closed` (default) refuses with 503,
since an unchecked request can spend money nobody approved; `open` lets it through, and the
usage event still lands in the ledger when billing returns (spend may then pass the limit by
what was admitted while billing was away).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from lobe.gateway.settings import GatewaySettings
from lobe.shared.bus import Bus
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.embeddings_schema import EmbeddingsRequest
from lobe.shared.events.billing import (
    BUDGET_RELEASE,
    BUDGET_RESERVE,
    PRICE_QUOTE,
    BudgetDecision,
    BudgetRelease,
    BudgetReserve,
    PriceQuote,
    PriceQuoted,
)
from lobe.shared.events.chat import Caller, TokenUsage
from lobe.shared.media_schema import MediaRequest
from lobe.shared.openai_errors import ApiError
from lobe.shared.token_ceiling import prompt_token_ceiling

log = logging.getLogger(__name__)


class BudgetClient:
    def __init__(self, bus: Bus, settings: GatewaySettings) -> None:
        self.bus = bus
        self.settings = settings

    async def reserve(
        self, request_id: str, caller: Caller, body: ChatCompletionRequest | EmbeddingsRequest | MediaRequest
    ) -> bool:
        """Admit or raise 429 `insufficient_quota`; True when a hold was taken (to release)."""
        if not self.settings.billing_enabled:
            return False
        limit = body.output_token_limit
        # An embedding generates nothing (its limit is 0); the hold's one output token keeps the
        # reserve's contract (at least one), an upper bound still.
        output = self.settings.default_max_output_tokens if limit is None else max(limit, 1)
        request = BudgetReserve(
            request_id=request_id,
            user_id=caller.user_id,
            model=body.model,
            prompt_tokens_estimate=prompt_token_ceiling(body),
            max_output_tokens=output,
            units=body.unit_ceiling() if isinstance(body, MediaRequest) else None,
            expires_at=datetime.now(UTC) + timedelta(seconds=self.settings.billing_timeout_s),
        )
        decision = await self.bus.request(BUDGET_RESERVE, request, self.settings.billing_timeout_s)
        if not isinstance(decision, BudgetDecision):  # unanswered, or unreadable (logged by the bus)
            # Billing may still commit a hold in the last instant before the deadline: free it.
            await self.release(request_id, caller)
            if self.settings.budget_fail_mode == "open":
                log.warning("billing unreachable; admitting (fail-open)", extra={"request_id": request_id})
                return False
            raise ApiError(
                503,
                "Usage limits cannot be checked right now; retry shortly.",
                "billing_unavailable",
                headers={"Retry-After": "1"},
            )
        if not decision.admitted:
            raise ApiError(429, decision.message or "You exceeded your current quota.", "insufficient_quota")
        return True

    async def release(self, request_id: str, caller: Caller) -> None:
        """Free a hold whose request never reached a worker (so no usage event will settle it)."""
        await self.bus.publish(BUDGET_RELEASE, BudgetRelease(request_id=request_id, user_id=caller.user_id))

    async def quote(
        self, request_id: str, provider: str, model: str, usage: TokenUsage, cache_hit: bool = False
    ) -> float | None:
        """The cost billing will record for this usage; None when billing cannot say in time."""
        quote = PriceQuote(
            request_id=request_id, provider=provider, model=model, usage=usage, cache_hit=cache_hit
        )
        reply = await self.bus.request(PRICE_QUOTE, quote, self.settings.billing_timeout_s)
        return reply.cost_usd if isinstance(reply, PriceQuoted) else None
