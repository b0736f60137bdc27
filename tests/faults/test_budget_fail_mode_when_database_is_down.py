"""Billing up but its PostgreSQL down: reserve requests go unanswered and BUDGET_FAIL_MODE decides.

tests/e2e/test_budgets.py covers billing absent (no responders, an instant answer); here billing
is subscribed but cannot decide, so the gateway waits out BILLING_TIMEOUT_S.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from lobe.chat_worker.service import ChatWorker
from lobe.devtools.servers import PostgresServer
from lobe.devtools.suite.fixtures import MakeProcess

from .conftest import billing_service, chat, fetchval, gateway_service, wait_until

API_KEY = "sk-fault-carol"
TIMEOUT_S = 0.3


async def test_database_outage_gives_503_when_closed_and_admits_then_bills_when_open(
    nats_url: str, private_pg_server: PostgresServer, make_process: MakeProcess, worker: ChatWorker
) -> None:
    pg = private_pg_server
    dsn = pg.dsn("postgres")
    billing = billing_service(make_process, nats_url, dsn)
    gateways = {
        mode: gateway_service(
            make_process,
            f"gateway-{mode}",
            nats_url,
            f"{API_KEY}:carol:basic",
            BILLING_ENABLED="true",
            BUDGET_FAIL_MODE=mode,
            BILLING_TIMEOUT_S=str(TIMEOUT_S),
            # The fail mode is for requests that must ask billing: under a live budget lease the
            # gateway asks nothing (the budget was set aside before the outage), so leases are off
            # here to make every request ask (docs/billing.md, "Budget leases").
            BUDGET_LEASES="false",
        )
        for mode in ("closed", "open")
    }
    await asyncio.gather(billing.start(), *(g.start() for g in gateways.values()))
    payload = {"model": "mock", "messages": [{"role": "user", "content": "hello"}], "stream": False}

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        healthy = await chat(http, gateways["closed"].url, API_KEY, payload)
        assert (healthy.status, healthy.code) == (200, None)

        await asyncio.to_thread(pg.stop)
        started = time.monotonic()
        closed = await chat(http, gateways["closed"].url, API_KEY, payload)
        waited = time.monotonic() - started
        opened = await chat(http, gateways["open"].url, API_KEY, payload)

    print(f"\nfail-closed answered {closed.status} after {waited:.2f} s (billing timeout {TIMEOUT_S} s)")
    assert (closed.status, closed.code) == (503, "billing_unavailable")
    # Billing was subscribed but silent: the gateway waited out its timeout, and no longer.
    assert TIMEOUT_S * 0.9 <= waited < TIMEOUT_S + 2
    assert (opened.status, opened.code) == (200, None), "fail-open admits and answers in full"

    # The admitted request's usage waited in the stream and is billed once the database is back.
    await asyncio.to_thread(pg.start)

    async def both_billed() -> bool:
        return int(await fetchval(dsn, "SELECT count(*) FROM usage_ledger WHERE user_id = 'carol'")) == 2

    catch_up = await wait_until(both_billed, within=30, what="the fail-open request in the ledger")
    print(f"fail-open usage in the ledger {catch_up:.1f} s after PostgreSQL returned")
