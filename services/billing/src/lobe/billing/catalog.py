"""Mirror the operator's YAML (prices, plans) into PostgreSQL so SQL can join against it.

The YAML stays the source of truth; the mirror is rewritten at every start, in one transaction.
Prices are upserted, never deleted: ledger rows keep pointing at the rate they were priced with.
"""

from __future__ import annotations

import asyncpg

from lobe.billing.plans import PlanBook
from lobe.billing.prices import PriceTable


async def sync_catalog(pool: asyncpg.Pool, prices: PriceTable, plans: PlanBook) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(
            """INSERT INTO prices (provider, model, effective_from, input_per_mtok, output_per_mtok,
                                   cached_input_per_mtok)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (provider, model, effective_from) DO UPDATE SET
                   input_per_mtok = excluded.input_per_mtok,
                   output_per_mtok = excluded.output_per_mtok,
                   cached_input_per_mtok = excluded.cached_input_per_mtok""",
            prices.rows(),
        )
        await conn.executemany(
            """INSERT INTO plans (name, tokens_limit, cost_limit_usd, requests_limit, rate_tier)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (name) DO UPDATE SET
                   tokens_limit = excluded.tokens_limit,
                   cost_limit_usd = excluded.cost_limit_usd,
                   requests_limit = excluded.requests_limit,
                   rate_tier = excluded.rate_tier,
                   updated_at = now()""",
            plans.rows(),
        )
