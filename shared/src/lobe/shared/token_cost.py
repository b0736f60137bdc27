"""A token count's exact cost at a rate in US dollars per million tokens: the ledger's arithmetic
(billing prices every usage event with it) and the gateway's, which admits requests under a budget
lease and prices their final chunk with the rates the lease brought (docs/billing.md, "Budget
leases"). One function, so a worst case the gateway charges a lease is the one billing would hold.

Money is Decimal end to end; a float never touches a cost.
"""

from __future__ import annotations

from decimal import Decimal, localcontext

MILLION = Decimal(1_000_000)
# Costs are exact at 10 decimals: prices have <= 4 decimals and tokens are integers / 1e6.
COST_QUANTUM = Decimal("1e-10")
COST_PRECISION = 60  # digits: 2 x 64-bit token counts times any price, to COST_QUANTUM


def token_cost(
    prompt_tokens: int,
    completion_tokens: int,
    input_rate: Decimal,
    output_rate: Decimal,
    cached_tokens: int = 0,
    cached_rate: Decimal | None = None,
) -> Decimal:
    """Exact cost. `prompt_tokens` includes `cached_tokens` (OpenAI semantics, which the workers
    emit); cached tokens at `cached_rate`, the input rate when there is none."""
    cached = min(cached_tokens, prompt_tokens)
    # Exact for any token count a valid event carries (the default 28 digits are not: 10^30
    # tokens made quantize() raise); whether the ledger can store the result is its own check.
    with localcontext() as exact:
        exact.prec = COST_PRECISION
        micro = (
            (prompt_tokens - cached) * input_rate
            + cached * (input_rate if cached_rate is None else cached_rate)
            + completion_tokens * output_rate
        )
        return (micro / MILLION).quantize(COST_QUANTUM)
