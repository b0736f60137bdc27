"""Freeing budget holds: one statement for every way a hold ends (settled, released, expired).

The DELETE waits on each hold's row lock and returns the period the hold is in when it is freed:
a reset (lobe.billing.periods) that moved the hold meanwhile has committed, and the hold is in the
period it opened. That period's row was inserted by the same reset, after this statement's snapshot,
so a plain UPDATE ... FROM would not see it and the new period would keep the amounts for good.
The upsert's conflict check finds the latest committed row whatever the snapshot, and its DO UPDATE
subtracts under that row's lock. The INSERT arm (nothing held) never adds a row in practice: a
hold's period row is written with the hold, and a reset writes the new one with the move.
"""

FREE_HOLDS = """
WITH gone AS (
    DELETE FROM reservations WHERE request_id = ANY($1::text[]) RETURNING user_id, period, amount_usd, tokens
), freed AS (
    SELECT user_id, period, sum(amount_usd) AS usd, count(*) AS n, sum(tokens) AS tok FROM gone GROUP BY 1, 2
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
