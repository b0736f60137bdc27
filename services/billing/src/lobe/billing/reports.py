"""Usage reports for one user: a period's totals by provider and model, its periods, limit status.

Money is returned as decimal strings: exact, and JSON numbers would be parsed as floats.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import asyncpg

from lobe.billing.admin import account
from lobe.billing.periods import calendar_of, periods_of
from lobe.billing.plans import PlanBook
from lobe.billing.report_models import (
    DayTotals,
    GroupTotals,
    PairTotals,
    PeriodTotals,
    Totals,
    UsageReport,
    usd,
)


def money(value: Decimal | None) -> str | None:
    return None if value is None else usd(value)


async def usage_report(pool: asyncpg.Pool, plans: PlanBook, user_id: str, period: str) -> UsageReport:
    rows = await pool.fetch(
        """SELECT provider, model, requests, prompt_tokens, completion_tokens, cached_tokens, cost_usd
           FROM usage_rollups WHERE user_id = $1 AND period = $2 ORDER BY cost_usd DESC, provider, model""",
        user_id,
        period,
    )
    breakdown = [
        PairTotals(
            provider=r["provider"],
            model=r["model"],
            requests=r["requests"],
            prompt_tokens=r["prompt_tokens"],
            completion_tokens=r["completion_tokens"],
            cached_tokens=r["cached_tokens"],
            cost_usd=usd(r["cost_usd"]),
        )
        for r in rows
    ]
    totals = Totals(
        requests=sum(r["requests"] for r in rows),
        prompt_tokens=sum(r["prompt_tokens"] for r in rows),
        completion_tokens=sum(r["completion_tokens"] for r in rows),
        cached_tokens=sum(r["cached_tokens"] for r in rows),
        cost_usd=usd(sum((r["cost_usd"] for r in rows), Decimal(0))),
    )
    periods = [
        PeriodTotals(**{**p, "cost_usd": usd(p["cost_usd"])})
        for p in await periods_of(pool, plans, user_id, calendar_of(period))
    ]
    return UsageReport(
        user_id=user_id,
        period=period,
        totals=totals,
        breakdown=breakdown,
        by_provider=_grouped(rows, "provider"),
        by_model=_grouped(rows, "model"),
        periods=periods,
        days=await _days(pool, user_id, period),
    )


async def _days(pool: asyncpg.Pool, user_id: str, period: str) -> list[DayTotals]:
    rows = await pool.fetch(
        """SELECT to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, count(*) AS requests,
                  sum(prompt_tokens + completion_tokens) AS tokens, sum(cost_usd) AS cost_usd
           FROM usage_ledger WHERE user_id = $1 AND period = $2 GROUP BY day ORDER BY day""",
        user_id,
        period,
    )
    return [
        DayTotals(day=r["day"], requests=r["requests"], tokens=r["tokens"], cost_usd=usd(r["cost_usd"]))
        for r in rows
    ]


def _grouped(rows: list[asyncpg.Record], key: str) -> dict[str, GroupTotals]:
    """The provider/model pairs summed by one of the two (LobeChat's byProvider and byModel)."""
    tokens: dict[str, int] = defaultdict(int)
    cost: dict[str, Decimal] = defaultdict(Decimal)
    requests: dict[str, int] = defaultdict(int)
    for r in rows:
        tokens[r[key]] += r["prompt_tokens"] + r["completion_tokens"]
        cost[r[key]] += r["cost_usd"]
        requests[r[key]] += r["requests"]
    return {k: GroupTotals(tokens=tokens[k], cost=usd(cost[k]), requests=requests[k]) for k in sorted(tokens)}


async def limits_report(pool: asyncpg.Pool, plans: PlanBook, user_id: str, period: str) -> dict[str, Any]:
    plan, override = await account(pool, user_id)
    limits = plans.limits(plan, override)
    row = await pool.fetchrow(
        "SELECT requests, tokens, cost_usd, reserved_usd FROM usage_periods WHERE user_id = $1 AND period = $2",
        user_id,
        period,
    )
    used_requests = row["requests"] if row else 0
    used_tokens = row["tokens"] if row else 0
    used_cost: Decimal = row["cost_usd"] if row else Decimal(0)
    reserved: Decimal = row["reserved_usd"] if row else Decimal(0)

    def status(used: Any, allowed: Any) -> dict[str, Any]:
        exceeded = allowed is not None and used >= allowed
        if isinstance(used, Decimal):
            shown_used: Any = money(used)
            shown_allowed: Any = money(allowed)
            remaining: Any = None if allowed is None else money(max(allowed - used, Decimal(0)))
        else:
            shown_used, shown_allowed = used, allowed
            remaining = None if allowed is None else max(allowed - used, 0)
        return {"used": shown_used, "limit": shown_allowed, "remaining": remaining, "exceeded": exceeded}

    return {
        "object": "usage.limits",
        "user_id": user_id,
        "plan": limits.plan,
        "rate_tier": limits.rate_tier,
        "period": period,
        "limits": {
            "requests": status(used_requests, limits.requests),
            "tokens": status(used_tokens, limits.tokens),
            "cost_usd": status(used_cost, limits.cost_usd),
        },
        "reserved_usd": money(reserved),
    }
