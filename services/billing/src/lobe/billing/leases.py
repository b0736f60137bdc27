"""Budget leases (docs/billing.md, "Budget leases"): a part of a user's remaining budget set aside
for one gateway to admit requests against locally, sized in "requests like this one".

A lease is a reservation row holding `requests` requests, taken by the exact hold's conditional
statement (lobe.billing.budgets), so `used + held <= limit` holds with it; it shrinks as its
requests' usage is written (lobe.billing.ledger, TAKE_FROM_LEASES) and goes when the gateway has
returned it and the last of them has settled, or when it expires (the holds' sweep).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

from lobe.billing.budgets import MAX_HOLD_TOKENS, MAX_HOLD_USD, Budgets
from lobe.billing.holds import LeaseTake, take_from_leases
from lobe.billing.plans import Limits
from lobe.billing.prices import Rate, cost_of
from lobe.shared.events.chat import TokenUsage
from lobe.shared.events.leases import (
    LeaseAsk,
    LeaseGrant,
    LeaseGrants,
    LeaseRate,
    LeaseReturn,
    LeaseWant,
    UpstreamPrice,
)

log = logging.getLogger(__name__)

# A lease takes at most this fraction of what the user has left, shared by the leases they have live.
SHARE = 4

_LIVE_LEASES = "SELECT count(*) FROM reservations WHERE user_id = $1 AND lease AND NOT returned"
_USED = "SELECT * FROM usage_periods WHERE user_id = $1 AND period = $2"
# A return locks its leases' period rows first, in the order the ledger's writes lock them, so a
# return and an ingest batch settling the same lease cannot deadlock.
_LOCK_PERIODS = """
SELECT 1 FROM usage_periods p JOIN reservations r ON (r.user_id, r.period) = (p.user_id, p.period)
WHERE r.request_id = ANY($1::text[]) ORDER BY p.user_id, p.period FOR UPDATE OF p
"""


class Leases:
    def __init__(self, budgets: Budgets, term_s: float, max_requests: int, min_requests: int) -> None:
        self.budgets = budgets
        self.term = timedelta(seconds=term_s)
        self.max_requests = max_requests
        self.min_requests = min_requests

    async def ask(self, ask: LeaseAsk) -> LeaseGrants:
        """Take back what is returned, then answer each want with a lease or none."""
        async with self.budgets.pool.acquire() as conn:
            await self.take_back(conn, ask.returns)
            grants = [await self._grant(conn, want) for want in ask.wants]
        return LeaseGrants(request_id=ask.request_id, grants=grants)

    async def take_back(self, conn: asyncpg.Connection, returns: Sequence[LeaseReturn]) -> None:
        if not returns:
            return
        takes = [LeaseTake(r.lease_id, r.usd, r.tokens, r.requests, returning=True) for r in returns]
        async with conn.transaction():
            await conn.execute(_LOCK_PERIODS, [r.lease_id for r in returns])
            await take_from_leases(conn, takes)

    async def _grant(self, conn: asyncpg.Connection, want: LeaseWant) -> LeaseGrant | None:
        if self.max_requests == 0:
            return None
        budgets = self.budgets
        now = datetime.now(UTC)
        rates = budgets.upstream_rates(want.model, now.date())
        hold_rate = Rate(input=max(r.input for _, r in rates), output=max(r.output for _, r in rates))
        usd = cost_of(
            hold_rate,
            TokenUsage(prompt_tokens=want.prompt_tokens_estimate, completion_tokens=want.max_output_tokens),
        )
        tokens = want.prompt_tokens_estimate + want.max_output_tokens
        period, limits = await budgets.account(conn, want.user_id, budgets.plans.period_key(now))
        used = await conn.fetchrow(_USED, want.user_id, period)
        live = await conn.fetchval(_LIVE_LEASES, want.user_id)
        n = min(self.max_requests, requests_left(used, limits, usd, tokens) // (SHARE * (live + 1)))
        if n < self.min_requests:
            return None  # near a limit: the exact hold, request by request
        if usd * n > MAX_HOLD_USD or tokens * n > MAX_HOLD_TOKENS:
            return None  # beyond what a hold row stores: each such request is refused exactly
        lease_id = f"lease-{uuid.uuid4().hex}"
        admit_until = now + self.term
        if not await budgets.hold(
            conn,
            want.user_id,
            period,
            limits,
            usd * n,
            tokens * n,
            lease_id,
            admit_until + budgets.ttl,
            n,
            True,
        ):
            return None  # spent meanwhile, or a reset closed the period: exact holds
        return LeaseGrant(
            lease_id=lease_id,
            user_id=want.user_id,
            model=want.model,
            requests=n,
            tokens=tokens * n,
            usd=usd * n,
            admit_until=admit_until,
            hold_rate=LeaseRate(input=hold_rate.input, output=hold_rate.output),
            prices=[
                UpstreamPrice(provider=p, model=m, input=r.input, output=r.output, cached_input=r.cached)
                for (p, m), r in rates
                if p  # the model itself, no worker having said: the gateway asks for a quote
            ],
            cache_hit_factor=budgets.prices.spec.cache_hit_factor,
        )


def requests_left(used: asyncpg.Record | None, limits: Limits, usd: Decimal, tokens: int) -> int:
    """How many more requests of this worst case every limit of the user still admits."""
    spent_usd = (used["cost_usd"] + used["reserved_usd"]) if used else Decimal(0)
    spent_tokens = (used["tokens"] + used["reserved_tokens"]) if used else 0
    spent_requests = (used["requests"] + used["reserved_requests"]) if used else 0
    left: list[int] = []
    if limits.cost_usd is not None:
        left.append(int((limits.cost_usd - spent_usd) // usd) if usd > 0 else 2**62)
    if limits.tokens is not None:
        left.append((limits.tokens - spent_tokens) // tokens if tokens > 0 else 2**62)
    if limits.requests is not None:
        left.append(limits.requests - spent_requests)
    return max(min(left, default=2**62), 0)
