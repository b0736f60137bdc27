"""A user's usage periods, and the reset that closes one and opens the next.

A period is the plans' calendar period (PLANS_FILE `period`: 2026-11, 2026-W47, 2026-11-30) until
an admin resets the user's usage (Admin.reset_usage): that closes the current period and opens
`<calendar key>.<n>` for the n-th reset inside the calendar period (2026-11.1), which runs until
the next reset or the calendar period's end. Every ledger row, rollup, period total and hold
carries the key of the period it counts in, so the ledger keeps every row, the usage report lists
the periods, and limits count from the reset (admission reads the new period's row).

Which period a usage row counts in is decided once, in the statement that writes it
(lobe.billing.ledger): the period its `occurred_at` falls in, by the resets committed then; its
period's totals move in that same statement, so each row counts in exactly one period whatever
the interleaving with a reset. A request that finishes while a reset commits may count on either
side of it, never on both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from lobe.billing.errors import ResetContendedError
from lobe.billing.plans import PeriodKind, PlanBook

# The calendar keys, then an optional reset ordinal.
CALENDAR_PATTERNS: dict[PeriodKind, str] = {
    "month": r"\d{4}-(0[1-9]|1[0-2])",
    "week": r"\d{4}-W(0[1-9]|[1-4]\d|5[0-3])",
    "day": r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])",
}
RESET_SUFFIX = r"(\.[1-9]\d{0,8})?"
# Concurrent resets of one user are done one after the other: each retry follows a reset that
# committed meanwhile, so this many only ever runs out if admins reset the user this often at once.
RESET_ATTEMPTS = 5


def period_at(user: str, base: str, at: str) -> str:
    """SQL for the key of the period in which moment `at` falls: the latest of the user's resets
    inside calendar period `base` started by then, else `base` itself (arguments: SQL expressions)."""
    return (
        f"coalesce((SELECT r.period FROM usage_resets r WHERE r.user_id = {user} AND r.base = {base} "
        f"AND r.started_at <= {at} ORDER BY r.seq DESC LIMIT 1), {base})"
    )


def calendar_of(period: str) -> str:
    return period.split(".", 1)[0]


def valid_period(plans: PlanBook, period: str) -> bool:
    if re.fullmatch(CALENDAR_PATTERNS[plans.period] + RESET_SUFFIX, period) is None:
        return False
    try:
        plans.period_bounds(calendar_of(period))
    except ValueError:  # the right shape, no such day or week (2026-02-30, 2026-W53)
        return False
    return True


_CURRENT = f"SELECT {period_at('$1::text', '$2::text', 'clock_timestamp()')}"


async def current_period(db: asyncpg.Pool | asyncpg.Connection, plans: PlanBook, user_id: str) -> str:
    base = plans.period_key(datetime.now(UTC))
    return str(await db.fetchval(_CURRENT, user_id, base))


# $1 user, $2 calendar key. Closes the current period under its row's lock (creating the row when
# nothing was used or held in it yet); from then on a hold racing the reset is refused there and
# taken again in the new period (lobe.billing.budgets). No row returned: another reset closed it
# first, and this one retries on the period that one opened.
_CLOSE = f"""
INSERT INTO usage_periods AS p (user_id, period, closed_at)
VALUES ($1::text, {period_at("$1::text", "$2::text", "clock_timestamp()")}, clock_timestamp())
ON CONFLICT (user_id, period) DO UPDATE SET closed_at = excluded.closed_at
WHERE p.closed_at IS NULL
RETURNING period, closed_at
"""

# $1 user, $2 calendar key, $3 the period just closed, $4 when. A statement of its own, after
# _CLOSE holds the lock: its snapshot sees every hold committed before that. Opens the next period
# and moves the running requests' holds (and budget leases) into it, so admission there counts them. A hold another
# transaction is freeing right now is skipped: that transaction frees it from the closed period.
_OPEN = """
WITH next AS (
    SELECT coalesce(max(seq), 0) + 1 AS seq FROM usage_resets WHERE user_id = $1 AND base = $2
), opened AS (
    INSERT INTO usage_resets (user_id, base, seq, period, started_at)
    SELECT $1, $2, seq, $2 || '.' || seq, $4 FROM next
    RETURNING period
), moved AS (
    UPDATE reservations SET period = (SELECT period FROM opened)
    WHERE request_id IN (
        SELECT request_id FROM reservations WHERE user_id = $1 AND period = $3 FOR UPDATE SKIP LOCKED
    )
    RETURNING amount_usd, tokens, requests
), held AS (
    SELECT coalesce(sum(requests), 0) AS n, coalesce(sum(amount_usd), 0) AS usd,
        coalesce(sum(tokens), 0) AS tok FROM moved
), closed AS (
    UPDATE usage_periods p SET reserved_usd = greatest(p.reserved_usd - h.usd, 0),
        reserved_requests = greatest(p.reserved_requests - h.n, 0),
        reserved_tokens = greatest(p.reserved_tokens - h.tok, 0)
    FROM held h WHERE p.user_id = $1 AND p.period = $3
)
INSERT INTO usage_periods (user_id, period, reserved_usd, reserved_requests, reserved_tokens)
SELECT $1, o.period, h.usd, h.n, h.tok FROM opened o, held h
RETURNING period, reserved_requests
"""


@dataclass(frozen=True)
class Reset:
    user_id: str
    closed: str  # the period that ended
    opened: str  # the period that starts
    at: datetime
    moved_holds: int  # holds of running requests now counted in the new period


async def reset(conn: asyncpg.Connection, plans: PlanBook, user_id: str) -> Reset:
    """Close the user's current period and open the next, in one transaction."""
    base = plans.period_key(datetime.now(UTC))
    for _ in range(RESET_ATTEMPTS):
        async with conn.transaction():
            closed = await conn.fetchrow(_CLOSE, user_id, base)
            if closed is None:
                continue
            opened = await conn.fetchrow(_OPEN, user_id, base, closed["period"], closed["closed_at"])
            return Reset(
                user_id, closed["period"], opened["period"], closed["closed_at"], opened["reserved_requests"]
            )
    raise ResetContendedError(user_id, RESET_ATTEMPTS)


async def periods_of(
    db: asyncpg.Pool | asyncpg.Connection, plans: PlanBook, user_id: str, base: str
) -> list[dict[str, Any]]:
    """The user's periods in calendar period `base`, oldest first, with what each counted."""
    start, end = plans.period_bounds(base)
    resets = await db.fetch(
        "SELECT period, started_at FROM usage_resets WHERE user_id = $1 AND base = $2 ORDER BY seq",
        user_id,
        base,
    )
    keys = [base, *(r["period"] for r in resets)]
    starts = [start, *(r["started_at"] for r in resets)]
    totals = {
        r["period"]: r
        for r in await db.fetch(
            "SELECT period, requests, tokens, cost_usd FROM usage_periods WHERE user_id = $1 AND period = ANY($2)",
            user_id,
            keys,
        )
    }
    out = []
    for key, started, ended in zip(keys, starts, [*starts[1:], end], strict=True):
        row = totals.get(key)
        out.append(
            {
                "period": key,
                "started_at": started,
                "ended_at": ended,
                "requests": row["requests"] if row else 0,
                "tokens": row["tokens"] if row else 0,
                "cost_usd": row["cost_usd"] if row else Decimal(0),
            }
        )
    return out
