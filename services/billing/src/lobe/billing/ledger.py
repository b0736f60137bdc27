"""Writing priced usage to the ledger: one transaction per batch, idempotent on request_id.

Order inside the transaction: claim request ids (the dedupe table returns only new ones) and add
exactly those rows to the rollups and the per-period totals (one statement), COPY them into the
partitioned ledger, then settle their budget holds. A duplicate therefore changes nothing at all.

Two producers may record one request: the worker on `usage.recorded`, and the gateway on
`usage.reported` (a lost worker, a cache hit). The worker's record wins whatever the order: a
report arriving after it is a duplicate, and a record arriving after a report takes its claim
over (the claim's `reported` flag), and the report's row is taken out of the ledger and its totals
(_SUPERSEDE, a second statement only in a batch that has such a record). A `cache_hit` report
counts only for a request billing admitted for the same user and still holds (its reservation, or
the budget lease the report names):
a gateway's credentials cannot erase the cost of an answer a worker gave, nor invent cache hits.
Aggregates are upserted in sorted key order so concurrent batches lock rows in the same order
and cannot deadlock one another.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal

import asyncpg

from lobe.billing.db_metrics import timed_copy
from lobe.billing.disconnects import billed_units, billed_usage
from lobe.billing.holds import FREE_HOLDS, LeaseTake, take_from_leases
from lobe.billing.periods import period_at
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
    "kind",
    "images",
    "image_size",
    "image_quality",
    "characters",
    "audio_seconds",
)


@dataclass(frozen=True)
class LedgerRow:
    event: UsageRecorded
    period: str  # the calendar period until written; then the period it counts in (lobe.billing.periods)
    cost_usd: Decimal
    priced: bool
    price_effective_from: date | None
    reported: bool = False  # the gateway's `usage.reported`, not the worker's `usage.recorded`

    @property
    def request_id(self) -> str:
        return self.event.request_id

    def record(self) -> tuple[object, ...]:
        e, u, units = self.event, self.event.usage, self.event.units
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
            e.kind,
            units.images if units else None,
            units.image_size if units else None,
            units.image_quality if units else None,
            units.characters if units else None,
            Decimal(str(units.audio_seconds)) if units else None,
        )


def price_event(
    event: UsageRecorded, prices: PriceTable, plans: PlanBook, reported: bool = False
) -> LedgerRow:
    usage = billed_usage(event, plans)  # a cancelled request: per its disconnect policy
    p = prices.price(
        event.provider,
        event.priced_model,
        event.occurred_at,
        usage,
        event.status == "cache_hit",
        billed_units(event, plans),
    )
    period = plans.period_key(event.occurred_at)
    return LedgerRow(event, period, p.cost_usd, p.priced, p.effective_from, reported)


def month_start(when: datetime) -> datetime:
    return when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


class PartitionCache:
    """Months whose ledger partition exists; the DDL call is made once per month per process."""

    def __init__(self) -> None:
        self._known: set[tuple[int, int]] = set()

    async def ensure(self, pool: asyncpg.Pool, rows: list[LedgerRow]) -> None:
        # A (year, month) key per row, the datetime arithmetic only per month: this runs for every
        # event of every batch.
        months = {(t.year, t.month): t for t in (r.event.occurred_at for r in rows)}
        for key, ts in months.items():
            if key not in self._known:
                await pool.fetchval("SELECT lobe_ensure_usage_partition($1)", month_start(ts))
                self._known.add(key)


# One statement claims the batch's request ids (the dedupe table takes only new ones) and adds
# exactly the newly claimed rows to the rollups and the per-period totals, summed by PostgreSQL:
# the ingester's CPU, not the database's, is what a batch waits on (docs/performance.md). Each
# upsert goes in its keys' sorted order and the statement runs its parts in one fixed order, so
# concurrent batches lock rows in the same order and cannot deadlock one another.
_CLAIM = f"""
WITH given AS (
    SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::bigint[], $8::bigint[], $9::bigint[], $10::numeric[], $11::boolean[],
                         $12::boolean[], $13::text[])
        AS b(request_id, occurred_at, user_id, calendar, provider, model,
             prompt_tokens, completion_tokens, cached_tokens, cost_usd, reported, needs_hold, lease_id)
), batch AS (
    SELECT b.*, {period_at("b.user_id", "b.calendar", "b.occurred_at")} AS period FROM given b
), admitted AS (
    SELECT * FROM batch b
    WHERE NOT b.needs_hold
       OR EXISTS (SELECT 1 FROM reservations r
                  WHERE r.request_id = coalesce(b.lease_id, b.request_id) AND r.user_id = b.user_id)
), claimed AS (
    INSERT INTO usage_request_ids AS u (request_id, occurred_at, reported)
    SELECT request_id, occurred_at, reported FROM admitted ORDER BY request_id
    ON CONFLICT (request_id) DO UPDATE SET reported = false, superseded_at = now()
    WHERE u.reported AND NOT excluded.reported
    RETURNING request_id, superseded_at IS NOT NULL AS supersedes
), new AS (
    SELECT batch.* FROM batch JOIN claimed USING (request_id)
), rollups AS (
    INSERT INTO usage_rollups AS r
        (user_id, period, provider, model, requests, prompt_tokens, completion_tokens, cached_tokens, cost_usd)
    SELECT user_id, period, provider, model, count(*), sum(prompt_tokens), sum(completion_tokens),
           sum(cached_tokens), sum(cost_usd)
    FROM new GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (user_id, period, provider, model) DO UPDATE SET
        requests = r.requests + excluded.requests,
        prompt_tokens = r.prompt_tokens + excluded.prompt_tokens,
        completion_tokens = r.completion_tokens + excluded.completion_tokens,
        cached_tokens = r.cached_tokens + excluded.cached_tokens,
        cost_usd = r.cost_usd + excluded.cost_usd
), periods AS (
    INSERT INTO usage_periods AS p (user_id, period, requests, tokens, cost_usd)
    SELECT user_id, period, count(*), sum(prompt_tokens + completion_tokens), sum(cost_usd)
    FROM new GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (user_id, period) DO UPDATE SET
        requests = p.requests + excluded.requests,
        tokens = p.tokens + excluded.tokens,
        cost_usd = p.cost_usd + excluded.cost_usd
)
SELECT c.request_id, c.supersedes, b.period FROM claimed c JOIN batch b USING (request_id)
UNION ALL
SELECT request_id, NULL, NULL FROM batch WHERE needs_hold AND request_id NOT IN (SELECT request_id FROM admitted)
"""

# $1 request ids whose report a record superseded: the report's row leaves the ledger, and what it
# added to the rollups and the period's totals is taken back (the record's was added by _CLAIM).
_SUPERSEDE = """
WITH old AS (
    DELETE FROM usage_ledger WHERE request_id = ANY($1::text[])
    RETURNING user_id, period, provider, model, prompt_tokens, completion_tokens, cached_tokens, cost_usd
), rollups AS (
    UPDATE usage_rollups r SET
        requests = r.requests - o.n, prompt_tokens = r.prompt_tokens - o.p,
        completion_tokens = r.completion_tokens - o.c, cached_tokens = r.cached_tokens - o.k,
        cost_usd = r.cost_usd - o.cost
    FROM (SELECT user_id, period, provider, model, count(*) AS n, sum(prompt_tokens) AS p,
                 sum(completion_tokens) AS c, sum(cached_tokens) AS k, sum(cost_usd) AS cost
          FROM old GROUP BY 1, 2, 3, 4) o
    WHERE (r.user_id, r.period, r.provider, r.model) = (o.user_id, o.period, o.provider, o.model)
)
UPDATE usage_periods p SET
    requests = p.requests - o.n, tokens = p.tokens - o.t, cost_usd = p.cost_usd - o.cost
FROM (SELECT user_id, period, count(*) AS n, sum(prompt_tokens + completion_tokens) AS t,
             sum(cost_usd) AS cost FROM old GROUP BY 1, 2) o
WHERE (p.user_id, p.period) = (o.user_id, o.period)
"""


@dataclass(frozen=True)
class Written:
    inserted: list[LedgerRow]  # new in the ledger (a record superseding a report included)
    unadmitted: list[LedgerRow]  # `cache_hit` reports for a request billing holds no admission of


async def write_batch(conn: asyncpg.Connection, rows: list[LedgerRow]) -> Written:
    """Write rows not yet in the ledger; returns those inserted. Caller owns the transaction."""
    if not rows:
        return Written([], [])
    events = [r.event for r in rows]
    claimed = await conn.fetch(
        _CLAIM,
        [e.request_id for e in events],
        [e.occurred_at for e in events],
        [e.user_id for e in events],
        [r.period for r in rows],
        [e.provider for e in events],
        [e.model for e in events],
        [e.usage.prompt_tokens for e in events],
        [e.usage.completion_tokens for e in events],
        [e.usage.cached_tokens for e in events],
        [r.cost_usd for r in rows],
        [r.reported for r in rows],
        [r.reported and e.status == "cache_hit" for r, e in zip(rows, events, strict=True)],
        [e.lease.lease_id if e.lease else None for e in events],
    )
    outcome = {rec["request_id"]: rec["supersedes"] for rec in claimed}
    period = {rec["request_id"]: rec["period"] for rec in claimed}
    unadmitted = [r for r in rows if r.request_id in outcome and outcome[r.request_id] is None]
    new = [replace(r, period=period[r.request_id]) for r in rows if outcome.get(r.request_id) is not None]
    if not new:
        return Written([], unadmitted)
    superseding = [r.request_id for r in new if outcome[r.request_id]]
    if superseding:  # rare: a gateway reported a request whose worker recorded it after all
        await conn.execute(_SUPERSEDE, superseding)
    with timed_copy("usage_ledger"):
        await conn.copy_records_to_table(
            "usage_ledger", records=[r.record() for r in new], columns=LEDGER_COLUMNS
        )
    # A settled request's hold is replaced by its real cost (added above): an exact hold goes, a
    # lease gives up the request's charge. A record superseding a report: the report settled it.
    await conn.execute(FREE_HOLDS, [r.request_id for r in new])
    await take_from_leases(
        conn,
        [
            LeaseTake(lease.lease_id, lease.usd, lease.tokens, 1)
            for r in new
            if (lease := r.event.lease) is not None and not outcome[r.request_id]
        ],
    )
    return Written(new, unadmitted)
