"""Freeing budget holds: one statement for every way a hold ends (settled, released, expired), a
budget lease's row included (it counts its `requests` where an exact hold counts one).

The DELETE waits on each hold's row lock and returns the period the hold is in when it is freed:
a reset (lobe.billing.periods) that moved the hold meanwhile has committed, and the hold is in the
period it opened. That period's row was inserted by the same reset, after this statement's snapshot,
so a plain UPDATE ... FROM would not see it and the new period would keep the amounts for good.
The upsert's conflict check finds the latest committed row whatever the snapshot, and its DO UPDATE
subtracts under that row's lock. The INSERT arm (nothing held) never adds a row in practice: a
hold's period row is written with the hold, and a reset writes the new one with the move.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import asyncpg

FREE_HOLDS = """
WITH gone AS (
    DELETE FROM reservations WHERE request_id = ANY($1::text[]) RETURNING user_id, period, amount_usd, tokens, requests
), freed AS (
    SELECT user_id, period, sum(amount_usd) AS usd, sum(requests) AS n, sum(tokens) AS tok FROM gone GROUP BY 1, 2
)
INSERT INTO usage_periods AS p (user_id, period)
SELECT user_id, period FROM freed
ON CONFLICT (user_id, period) DO UPDATE
SET (reserved_usd, reserved_requests, reserved_tokens) = (
    SELECT greatest(p.reserved_usd - f.usd, 0), greatest(p.reserved_requests - f.n, 0),
        greatest(p.reserved_tokens - f.tok, 0)
    FROM freed f WHERE f.user_id = p.user_id AND f.period = p.period
)
"""

# Taking from budget leases (lobe.billing.leases): $1 lease ids, $2 amounts, $3 tokens, $4 requests,
# $5 whether the lease is being returned. A usage written under a lease takes its charge (one
# request, its worst case); a return takes the part the gateway never admitted. What is taken is
# at most what the lease still holds, and leaves the period's reserved amounts with it (the upsert,
# for the reason above: a reset may have moved the lease meanwhile). Returns the ids of returned
# leases with no request left unsettled: the caller frees them with FREE_HOLDS.
TAKE_FROM_LEASES = """
WITH given AS (
    SELECT lease_id, sum(usd) AS usd, sum(tok) AS tok, sum(n) AS n, bool_or(ret) AS ret
    FROM unnest($1::text[], $2::numeric[], $3::bigint[], $4::bigint[], $5::boolean[])
        AS g(lease_id, usd, tok, n, ret)
    GROUP BY 1
), locked AS (
    SELECT r.request_id, r.user_id, r.period, least(r.amount_usd, g.usd) AS usd,
           least(r.tokens, g.tok) AS tok, least(r.requests, g.n) AS n, g.ret
    FROM reservations r JOIN given g ON g.lease_id = r.request_id
    WHERE r.lease ORDER BY r.request_id FOR UPDATE OF r
), taken AS (
    UPDATE reservations r SET amount_usd = r.amount_usd - l.usd, tokens = r.tokens - l.tok,
        requests = r.requests - l.n, returned = r.returned OR l.ret
    FROM locked l WHERE r.request_id = l.request_id
    RETURNING r.request_id, r.returned AND r.requests = 0 AS drained
), freed AS (
    SELECT user_id, period, sum(usd) AS usd, sum(n) AS n, sum(tok) AS tok FROM locked GROUP BY 1, 2
), periods AS (
    INSERT INTO usage_periods AS p (user_id, period)
    SELECT user_id, period FROM freed ORDER BY 1, 2
    ON CONFLICT (user_id, period) DO UPDATE
    SET (reserved_usd, reserved_requests, reserved_tokens) = (
        SELECT greatest(p.reserved_usd - f.usd, 0), greatest(p.reserved_requests - f.n, 0),
            greatest(p.reserved_tokens - f.tok, 0)
        FROM freed f WHERE f.user_id = p.user_id AND f.period = p.period
    )
)
SELECT request_id FROM taken WHERE drained
"""


async def take_from_leases(conn: asyncpg.Connection, takes: Sequence[LeaseTake]) -> None:
    """Take each amount from its lease (TAKE_FROM_LEASES), then free the returned leases that have
    nothing left to settle. The caller owns the transaction."""
    if not takes:
        return
    drained = await conn.fetch(
        TAKE_FROM_LEASES,
        [t.lease_id for t in takes],
        [t.usd for t in takes],
        [t.tokens for t in takes],
        [t.requests for t in takes],
        [t.returning for t in takes],
    )
    if drained:
        await conn.execute(FREE_HOLDS, [r["request_id"] for r in drained])


@dataclass(frozen=True)
class LeaseTake:
    """What leaves a lease: a settled request's charge, or a return's unused part."""

    lease_id: str
    usd: Decimal
    tokens: int
    requests: int
    returning: bool = False
