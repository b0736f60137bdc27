"""Budget admission: reserve, release, expire, and the gateway's price quotes (answered on the bus
by lobe.billing.responders).

The check and the hold are one statement: an upsert of the user's period row whose conditional
DO UPDATE PostgreSQL evaluates against the latest committed row under its row lock (READ
COMMITTED), chained to the reservation's insert. So any number of gateway replicas and billing
replicas cannot admit past a limit together, for each of cost, requests and tokens:
    used + held + this request's worst case <= limit.
The settled cost replaces the hold when the usage event is ingested (holds.FREE_HOLDS, called by
ledger.write_batch). Spend can pass the limit only by what a request really costs above its
reserved worst case; docs/billing.md states that bound and why it holds (the prompt's token
ceiling, max_tokens, the dearest upstream the route may reach).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg

from lobe.billing.admin import ACCOUNT, account_of
from lobe.billing.alerts import Alerts
from lobe.billing.errors import DeadlinePassedError, ResetContendedError
from lobe.billing.holds import FREE_HOLDS
from lobe.billing.periods import RESET_ATTEMPTS, period_at
from lobe.billing.plans import Limits, PlanBook
from lobe.billing.prices import PriceTable, Rate, cost_of
from lobe.billing.routes import RouteBook
from lobe.shared.events.billing import (
    BudgetDecision,
    BudgetRelease,
    BudgetReserve,
    LimitExceeded,
    LimitKind,
    PriceQuote,
    PriceQuoted,
)
from lobe.shared.events.chat import TokenUsage

# $1 user, $2 period, $3 worst-case cost, $4 cost limit, $5 requests limit, $6 worst-case tokens,
# $7 tokens limit, $8 request id (a lease's id), $9 hold expiry, $10 the requests held (1; a lease's
# size), $11 whether it is a lease. A first request of the period inserts the row when the limits
# allow it on an empty period; otherwise the DO UPDATE's WHERE decides. No row from the upsert means
# refused, and then no reservation is inserted either. A period a reset closed
# (lobe.billing.periods) refuses every hold: the caller takes it again in the new period.
_HOLD = """
WITH held AS (
    INSERT INTO usage_periods AS p (user_id, period, reserved_usd, reserved_requests, reserved_tokens)
    SELECT $1::text, $2::text, $3::numeric, $10::bigint, $6::bigint
    WHERE ($4::numeric IS NULL OR $3::numeric <= $4)
      AND ($5::bigint IS NULL OR $10::bigint <= $5)
      AND ($7::bigint IS NULL OR $6::bigint <= $7)
    ON CONFLICT (user_id, period) DO UPDATE
    SET reserved_usd = p.reserved_usd + excluded.reserved_usd,
        reserved_requests = p.reserved_requests + excluded.reserved_requests,
        reserved_tokens = p.reserved_tokens + excluded.reserved_tokens
    WHERE p.closed_at IS NULL
      AND ($4::numeric IS NULL OR p.cost_usd + p.reserved_usd + $3::numeric <= $4)
      AND ($5::bigint IS NULL OR p.requests + p.reserved_requests + $10::bigint <= $5)
      AND ($7::bigint IS NULL OR p.tokens + p.reserved_tokens + $6::bigint <= $7)
    RETURNING 1
)
INSERT INTO reservations (request_id, user_id, period, amount_usd, tokens, expires_at, requests, lease)
SELECT $8::text, $1, $2, $3, $6, $9::timestamptz, $10::bigint, $11::boolean FROM held
RETURNING request_id
"""


# $1 user, $2 request id, $3 calendar period. Whether the request already holds (a retry), the
# user's account and current period: one round trip where three were, on the path of every chat
# request.
_RESERVE_CONTEXT = f"""
SELECT (SELECT amount_usd FROM reservations WHERE request_id = $2) AS held,
       {period_at("$1::text", "$3::text", "clock_timestamp()")} AS period, a.*
FROM (SELECT 1) AS one LEFT JOIN LATERAL ({ACCOUNT}) AS a ON true
"""


# The largest hold the ledger's columns take: numeric(24, 10) (under 10^14) and bigint, with room
# for a period's sum of them.
MAX_HOLD_USD = Decimal(10) ** 12
MAX_HOLD_TOKENS = 2**53


class Budgets:
    def __init__(
        self,
        pool: asyncpg.Pool,
        prices: PriceTable,
        plans: PlanBook,
        ttl_s: float,
        alerts: Alerts,
        routes: RouteBook | None = None,
    ) -> None:
        self.pool = pool
        self.prices = prices
        self.routes = routes  # None: each model held at its own price
        self.plans = plans
        self.ttl = timedelta(seconds=ttl_s)
        self.alerts = alerts

    def worst_case(self, req: BudgetReserve, when: datetime) -> Decimal:
        """The request's most: its token ceilings at the dearest input and the dearest output price
        of every upstream the route may reach (lobe.billing.routes), plus a media request's units at
        the dearest of those upstreams' unit prices (docs/media.md), each priced as the ledger
        will price it (an unpriced one at the default rate)."""
        rates = self.upstream_rates(req.model, when.date())
        dearest = Rate(input=max(r.input for _, r in rates), output=max(r.output for _, r in rates))
        usage = TokenUsage(prompt_tokens=req.prompt_tokens_estimate, completion_tokens=req.max_output_tokens)
        cost = cost_of(dearest, usage)
        if req.units is not None:  # a media request's units, at the dearest upstream's unit prices
            unit_rates = [r if r.prices_units else self.prices.default for _, r in rates]
            cost += max(r.unit_cost(req.units) for r in unit_rates)
        return cost

    def upstream_rates(self, model: str, day: date) -> list[tuple[tuple[str, str], Rate]]:
        """Each upstream the model may reach (lobe.billing.routes; the model itself when no worker
        has said) with the rate the ledger will price it at that day (the default when unpriced)."""
        reached = (self.routes.reaches(model) if self.routes else []) or [("", model)]
        return [(pair, self.prices.rate(*pair, day) or self.prices.default) for pair in reached]

    async def reserve(self, req: BudgetReserve) -> BudgetDecision:
        """Admit and hold, or refuse (and announce the limit hit). DeadlinePassedError when the
        gateway has already stopped waiting, so no hold is left behind for a request that will
        not run.

        On the path of every chat request: one connection, two statements when admitted (the retry
        check with the account, then the hold); each commits on its own, the hold's writes
        together in one.
        """
        now = datetime.now(UTC)
        if req.expires_at is not None and now >= req.expires_at:
            raise DeadlinePassedError(req.request_id)
        calendar = self.plans.period_key(now)
        amount = self.worst_case(req, now)
        tokens = req.prompt_tokens_estimate + req.max_output_tokens
        if amount > MAX_HOLD_USD or tokens > MAX_HOLD_TOKENS:
            # Valid as an event, beyond any budget: refused as such, not left unanswered (the
            # hold's columns could not store it, and the gateway would answer 503).
            kind: LimitKind = "cost" if amount > MAX_HOLD_USD else "tokens"
            message = f"This request's worst case ({tokens} tokens, {amount} USD) is beyond any budget; lower max_tokens."
            return BudgetDecision(request_id=req.request_id, admitted=False, limit=kind, message=message)
        async with self.pool.acquire() as conn:
            context = await conn.fetchrow(_RESERVE_CONTEXT, req.user_id, req.request_id, calendar)
            if context["held"] is not None:  # a retried request: the hold is already there
                return BudgetDecision(
                    request_id=req.request_id, admitted=True, reserved_usd=float(context["held"])
                )
            plan, override = account_of(context)
            limits = self.plans.limits(plan, override)
            # Once more for each reset that closes the period under this hold (a reset is rare).
            for _ in range(RESET_ATTEMPTS):
                period = context["period"]
                if req.expires_at is not None and datetime.now(UTC) >= req.expires_at:
                    raise DeadlinePassedError(req.request_id)  # waited for a connection past it
                admitted = await self.hold(
                    conn, req.user_id, period, limits, amount, tokens, req.request_id, now + self.ttl
                )
                if admitted:
                    return BudgetDecision(
                        request_id=req.request_id, admitted=True, reserved_usd=float(amount)
                    )
                used = await conn.fetchrow(
                    "SELECT * FROM usage_periods WHERE user_id = $1 AND period = $2", req.user_id, period
                )
                if used is None or used["closed_at"] is None:
                    break
                context = await conn.fetchrow(_RESERVE_CONTEXT, req.user_id, req.request_id, calendar)
            else:
                raise ResetContendedError(req.user_id, RESET_ATTEMPTS)
        kind, spent, allowed = _blocking_limit(used, limits, tokens)
        self.alerts.limit_exceeded(
            LimitExceeded(
                request_id=req.request_id,
                user_id=req.user_id,
                limit=kind,
                period=period,
                used=spent,
                allowed=allowed,
            )
        )
        message = (
            f"You exceeded your {kind} limit for period {period}: {spent:g} used or held, "
            f"this request could need more than the {allowed:g} allowed on plan {limits.plan}."
        )
        return BudgetDecision(request_id=req.request_id, admitted=False, limit=kind, message=message)

    async def account(self, conn: asyncpg.Connection, user_id: str, calendar: str) -> tuple[str, Limits]:
        """The user's current period and limits (one statement: the reserve's context)."""
        context = await conn.fetchrow(_RESERVE_CONTEXT, user_id, "", calendar)
        plan, override = account_of(context)
        return context["period"], self.plans.limits(plan, override)

    async def hold(
        self,
        conn: asyncpg.Connection,
        user_id: str,
        period: str,
        limits: Limits,
        amount: Decimal,
        tokens: int,
        row_id: str,
        expires_at: datetime,
        requests: int = 1,
        lease: bool = False,
    ) -> bool:
        """The conditional hold (_HOLD): an exact hold of one request, or a lease of `requests`."""
        held = await conn.fetchval(
            _HOLD,
            user_id,
            period,
            amount,
            limits.cost_usd,
            limits.requests,
            tokens,
            limits.tokens,
            row_id,
            expires_at,
            requests,
            lease,
        )
        return held is not None

    async def release(self, req: BudgetRelease) -> None:
        await self.pool.execute(FREE_HOLDS, [req.request_id])  # one statement: atomic on its own

    def quote(self, req: PriceQuote) -> PriceQuoted:
        priced = self.prices.price(req.provider, req.model, req.occurred_at, req.usage, req.cache_hit)
        return PriceQuoted(request_id=req.request_id, cost_usd=float(priced.cost_usd), priced=priced.priced)

    async def expire(self) -> int:
        """Free holds whose request never settled or released (a gateway died mid-request)."""
        rows = await self.pool.fetch("SELECT request_id FROM reservations WHERE expires_at < now()")
        if rows:
            # A hold settled or released meanwhile is simply not found by FREE_HOLDS's DELETE.
            await self.pool.execute(FREE_HOLDS, [r["request_id"] for r in rows])
        return len(rows)


def _blocking_limit(
    used: asyncpg.Record | None, limits: Limits, tokens: int
) -> tuple[LimitKind, float, float]:
    """Which limit refused the hold, with what was used or held against it and what is allowed."""
    requests = (used["requests"] + used["reserved_requests"]) if used else 0
    if limits.requests is not None and requests + 1 > limits.requests:
        return "requests", float(requests), float(limits.requests)
    spent_tokens = (used["tokens"] + used["reserved_tokens"]) if used else 0
    if limits.tokens is not None and spent_tokens + tokens > limits.tokens:
        return "tokens", float(spent_tokens), float(limits.tokens)
    spent = (used["cost_usd"] + used["reserved_usd"]) if used else Decimal(0)
    return "cost", float(spent), float(limits.cost_usd or 0)
