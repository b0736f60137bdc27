"""Budget admission and cost quotes: the gateway's half of the protocol with billing.

Before dispatch the gateway reserves the request's worst case (the prompt's token ceiling,
lobe.shared.token_ceiling, plus the output cap; billing prices it at the dearest deployment the
route may reach); billing admits or refuses atomically, whatever the number of gateway
replicas. The usage event settles the hold; a request that never reached a worker releases it.

Far from a limit, a chat or embeddings request is admitted without asking: against a budget lease
billing granted this replica (lobe.gateway.budget_leases; docs/billing.md, "Budget leases"), whose
rates also price the final chunk without a quote. Near a limit there is no lease, and every request
takes the exact hold.

When billing does not answer a reserve, `BUDGET_FAIL_MODE` decides: `closed` (default) refuses with 503,
since an unchecked request can spend money nobody approved; `open` lets it through, and the
usage event still lands in the ledger when billing returns (spend may then pass the limit by
what was admitted while billing was away).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from lobe.gateway.budget_leases import LeaseBook
from lobe.gateway.settings import GatewaySettings
from lobe.shared.bus import Bus
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.embeddings_schema import EmbeddingsRequest
from lobe.shared.events.billing import (
    BILLING_ACCOUNT_CHANGED,
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
from lobe.shared.events.leases import LeaseCharge
from lobe.shared.media_schema import MediaRequest
from lobe.shared.openai_errors import ApiError
from lobe.shared.token_ceiling import prompt_token_ceiling

log = logging.getLogger(__name__)


class BudgetClient:
    def __init__(self, bus: Bus, settings: GatewaySettings) -> None:
        self.bus = bus
        self.settings = settings
        enabled = settings.billing_enabled and settings.budget_leases
        self.leases = LeaseBook(bus, settings.billing_timeout_s) if enabled else None

    async def admit(
        self, request_id: str, caller: Caller, body: ChatCompletionRequest | EmbeddingsRequest | MediaRequest
    ) -> tuple[bool, LeaseCharge | None]:
        """Admit within the budget or raise (as `reserve`): under the caller's lease for the model,
        with no round trip, else by the exact hold (no lease yet, near a limit, or a media request,
        priced by units). (whether a hold was taken, the lease charge)."""
        if not self.settings.billing_enabled:
            return False, None
        prompt, output = worst_tokens(body, self.settings.default_max_output_tokens)
        if self.leases is not None and not isinstance(body, MediaRequest):
            charge = self.leases.admit(caller.user_id, body.model, prompt, output)
            if charge is not None:
                return False, charge
        return await self._hold(request_id, caller, body, prompt, output), None

    def finished(self, charge: LeaseCharge, settled: bool) -> None:
        """A request admitted under a lease ended; `settled`: a usage event will settle it."""
        if self.leases is not None:
            self.leases.finished(charge, settled)

    async def watch_accounts(self) -> None:
        """A change of a user's plan or limits applies to their next request: their leases go."""
        if self.leases is not None:
            leases = self.leases
            await self.bus.subscribe(BILLING_ACCOUNT_CHANGED, lambda event: leases.forget_user(event.user_id))

    async def close(self) -> None:
        if self.leases is not None:
            await self.leases.close()

    async def reserve(
        self, request_id: str, caller: Caller, body: ChatCompletionRequest | EmbeddingsRequest | MediaRequest
    ) -> bool:
        """Admit or raise 429 `insufficient_quota`; True when a hold was taken (to release)."""
        if not self.settings.billing_enabled:
            return False
        prompt, output = worst_tokens(body, self.settings.default_max_output_tokens)
        return await self._hold(request_id, caller, body, prompt, output)

    async def _hold(
        self,
        request_id: str,
        caller: Caller,
        body: ChatCompletionRequest | EmbeddingsRequest | MediaRequest,
        prompt: int,
        output: int,
    ) -> bool:
        request = BudgetReserve(
            request_id=request_id,
            user_id=caller.user_id,
            model=body.model,
            prompt_tokens_estimate=prompt,
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
        self,
        request_id: str,
        provider: str,
        model: str,
        usage: TokenUsage,
        cache_hit: bool = False,
        requested: str | None = None,
    ) -> float | None:
        """The cost billing will record for this usage; None when billing cannot say in time. From
        a lease's prices when one brought this upstream's, else a quote."""
        if self.leases is not None:
            cost = self.leases.price(requested or model, provider, model, usage, cache_hit)
            if cost is not None:
                return float(cost)
        quote = PriceQuote(
            request_id=request_id, provider=provider, model=model, usage=usage, cache_hit=cache_hit
        )
        reply = await self.bus.request(PRICE_QUOTE, quote, self.settings.billing_timeout_s)
        return reply.cost_usd if isinstance(reply, PriceQuoted) else None


def worst_tokens(
    body: ChatCompletionRequest | EmbeddingsRequest | MediaRequest, default_output: int
) -> tuple[int, int]:
    """The request's token ceiling and output cap: what a hold or a lease charge is priced from."""
    limit = body.output_token_limit
    # An embedding generates nothing (its limit is 0); the hold's one output token keeps the
    # reserve's contract (at least one), an upper bound still.
    return prompt_token_ceiling(body), default_output if limit is None else max(limit, 1)
