"""Usage API on the ops port (filled in below)."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from pydantic import SecretStr

from lobe.billing.plans import PlanBook
from lobe.billing.prices import PriceTable


def build_api(
    pool: asyncpg.Pool, prices: PriceTable, plans: PlanBook, admin_token: SecretStr | None
) -> web.Application:
    return web.Application()
