"""Writing priced usage to the ledger: one transaction per batch, idempotent on request_id.

Order inside the transaction: claim request ids (the dedupe table returns only new ones), COPY
the new rows into the partitioned ledger, then add exactly those rows to the rollups and the
per-period totals (one statement) and settle their budget holds. A duplicate therefore changes
nothing at all. Aggregates are upserted in sorted key order so concurrent batches lock rows in
the same order and cannot deadlock one another.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import asyncpg

from lobe.billing.db_metrics import timed_copy
from lobe.billing.holds import FREE_HOLDS
from lobe.billing.plans import PlanBook
from lobe.billing.prices import PriceTable
from lobe.shared.events.usage import UsageRecorded

LEDGER_COLUMNS = (
    "request_id",
    "occurred_at",
    "event_id",
    "period",
    "user_id",
    "api_key_id",
    "provider",
    "deployment",
    "model",
    "status",
    "error_code",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost_usd",
    "priced",
    "price_effective_from",
    "ttft_ms",
    "duration_ms",
    "stream",
)


@dataclass(frozen=True)
class LedgerRow:
    event: UsageRecorded
    period: str
    cost_usd: Decimal
    priced: bool
    price_effective_from: date | None

    @property
    def request_id(self) -> str:
        return self.event.request_id

    def record(self) -> tuple[object, ...]:
        e, u = self.event, self.event.usage
        return (
            e.request_id,
            e.occurred_at,
            e.event_id,
            self.period,
            e.user_id,
            e.api_key_id,
            e.provider,
            e.deployment,
            e.model,
            e.status,
            e.error_code,
            u.prompt_tokens,
            u.completion_tokens,
            u.cached_tokens,
            u.reasoning_tokens,
            self.cost_usd,
            self.priced,
            self.price_effective_from,
            e.ttft_ms,
            e.duration_ms,
            e.stream,
        )


def price_event(event: UsageRecorded, prices: PriceTable, plans: PlanBook) -> LedgerRow:
    p = prices.price(
        event.provider, event.priced_model, event.occurred_at, event.usage, event.status == "cache_hit"
    )
    return LedgerRow(event, plans.period_key(event.occurred_at), p.cost_usd, p.priced, p.effective_from)


def month_start(when: datetime) -> datetime:
    return when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


class PartitionCache:
    """Months whose ledger partition exists; the DDL call is made once per month per process."""

    def __init__(self) -> None:
        self._known: set[tuple[int, int]] = set()

    async def ensure(self, pool: asyncpg.Pool, rows: list[LedgerRow]) -> None:
        for ts in {month_start(r.event.occurred_at) for r in rows}:
            key = (ts.year, ts.month)
            if key not in self._known:
                await pool.fetchval("SELECT lobe_ensure_usage_partition($1)", ts)
                self._known.add(key)


_CLAIM = """
INSERT INTO usage_request_ids (request_id, occurred_at)
SELECT * FROM unnest($1::text[], $2::timestamptz[]) ORDER BY 1
ON CONFLICT DO NOTHING
RETURNING request_id
"""

# The rollups and the per-period totals in one statement (one round trip less per batch). Each
# part upserts in its keys' sorted order; the statement runs its parts in one fixed order, so
# concurrent batches still lock rows in the same order and cannot deadlock one another.
_AGGREGATES = """
WITH rollups AS (
    INSERT INTO usage_rollups AS r
        (user_id, period, provider, model, requests, prompt_tokens, completion_tokens, cached_tokens, cost_usd)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[],
                         $7::bigint[], $8::bigint[], $9::numeric[])
    ON CONFLICT (user_id, period, provider, model) DO UPDATE SET
        requests = r.requests + excluded.requests,
        prompt_tokens = r.prompt_tokens + excluded.prompt_tokens,
        completion_tokens = r.completion_tokens + excluded.completion_tokens,
        cached_tokens = r.cached_tokens + excluded.cached_tokens,
        cost_usd = r.cost_usd + excluded.cost_usd
)
INSERT INTO usage_periods AS p (user_id, period, requests, tokens, cost_usd)
SELECT * FROM unnest($10::text[], $11::text[], $12::bigint[], $13::bigint[], $14::numeric[])
ON CONFLICT (user_id, period) DO UPDATE SET
    requests = p.requests + excluded.requests,
    tokens = p.tokens + excluded.tokens,
    cost_usd = p.cost_usd + excluded.cost_usd
"""


async def write_batch(conn: asyncpg.Connection, rows: list[LedgerRow]) -> list[LedgerRow]:
    """Write rows not yet in the ledger; returns those inserted. Caller owns the transaction."""
    if not rows:
        return []
    ids = [r.request_id for r in rows]
    claimed = await conn.fetch(_CLAIM, ids, [r.event.occurred_at for r in rows])
    new_ids = {rec["request_id"] for rec in claimed}
    new = [r for r in rows if r.request_id in new_ids]
    if not new:
        return []
    with timed_copy("usage_ledger"):
        await conn.copy_records_to_table(
            "usage_ledger", records=[r.record() for r in new], columns=LEDGER_COLUMNS
        )

    rollups: dict[tuple[str, str, str, str], list[int | Decimal]] = defaultdict(
        lambda: [0, 0, 0, 0, Decimal(0)]
    )
    periods: dict[tuple[str, str], list[int | Decimal]] = defaultdict(lambda: [0, 0, Decimal(0)])
    for r in new:
        e, u = r.event, r.event.usage
        a = rollups[(e.user_id, r.period, e.provider, e.model)]
        a[0] += 1
        a[1] += u.prompt_tokens
        a[2] += u.completion_tokens
        a[3] += u.cached_tokens
        a[4] += r.cost_usd
        p = periods[(e.user_id, r.period)]
        p[0] += 1
        p[1] += u.total_tokens
        p[2] += r.cost_usd
    rkeys = sorted(rollups)
    pkeys = sorted(periods)
    await conn.execute(
        _AGGREGATES,
        *[[k[i] for k in rkeys] for i in range(4)],
        *[[rollups[k][i] for k in rkeys] for i in range(5)],
        *[[k[i] for k in pkeys] for i in range(2)],
        *[[periods[k][i] for k in pkeys] for i in range(3)],
    )
    # A settled request's hold is replaced by its real cost (added above).
    await conn.execute(FREE_HOLDS, [r.request_id for r in new])
    return new
