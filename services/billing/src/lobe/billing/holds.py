"""Freeing budget holds: one statement for every way a hold ends (settled, released, expired)."""

FREE_HOLDS = """
WITH gone AS (
    DELETE FROM reservations WHERE request_id = ANY($1::text[]) RETURNING user_id, period, amount_usd, tokens
)
UPDATE usage_periods p
SET reserved_usd = greatest(p.reserved_usd - g.amount, 0), reserved_requests = greatest(p.reserved_requests - g.n, 0),
    reserved_tokens = greatest(p.reserved_tokens - g.tok, 0)
FROM (
    SELECT user_id, period, sum(amount_usd) AS amount, count(*) AS n, sum(tokens) AS tok FROM gone GROUP BY 1, 2
) g
WHERE p.user_id = g.user_id AND p.period = g.period
"""
