"""200 concurrent requests by one user through two gateway processes: spend never passes the budget.

The mock model's answers are sized so every request's real cost equals the worst case the
gateway reserves (max_tokens = the answer's exact length): a budget of 20.5 worst cases then
admits exactly 20, and any leak in the admission protocol shows up as a 21st.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg

from lobe.billing.admin import admin_session
from lobe.billing.plans import Override
from lobe.chat_worker.providers.mock import mock_answer
from lobe.chat_worker.service import ChatWorker
from lobe.devtools.suite import ServiceProcess
from lobe.devtools.suite.fixtures import MakeProcess
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.token_ceiling import prompt_token_ceiling

from .conftest import billing_service, chat, gateway_service, wait_until
from .workload import MILLION, ExpectedPrices

USER = "bob"
API_KEY = "sk-fault-bob"
REQUESTS = 200
AFFORDABLE = 20


def body(i: int) -> dict[str, Any]:
    # Fixed-width text: every request has the same prompt and answer length, so the same cost.
    return {
        "model": "mock",
        "messages": [{"role": "user", "content": f"question {i:03d}"}],
        "stream": i % 2 == 0,
    }


def tokens(i: int) -> tuple[int, int]:
    """(prompt, completion) tokens the mock reports for request i."""
    request = ChatCompletionRequest.model_validate(body(i))
    return prompt_token_ceiling(request), len(mock_answer(request))  # the mock: one chunk, one token


async def watch_peak(dsn: str, stop: asyncio.Event) -> Decimal:
    """The highest spent + held amount seen on the user's period row while `stop` is unset."""
    peak = Decimal(0)
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        while not stop.is_set():
            value = await conn.fetchval(
                "SELECT max(cost_usd + reserved_usd) FROM usage_periods WHERE user_id = $1", USER
            )
            peak = max(peak, value or Decimal(0))
            await asyncio.sleep(0.002)
    finally:
        await conn.close()
    return peak


async def test_spend_never_passes_the_budget_with_200_concurrent_requests_through_two_gateways(
    nats_url: str, billing_db: str, make_process: MakeProcess, worker: ChatWorker
) -> None:
    prompt, completion = tokens(0)
    assert all(tokens(i) == (prompt, completion) for i in range(REQUESTS))
    worst = worst_case()
    budget = worst * AFFORDABLE + worst / 2
    gateways = await start_race(nats_url, billing_db, make_process, budget)
    urls = [g.url for g in gateways]

    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_peak(billing_db, stop))
    started = time.monotonic()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
        outcomes = await asyncio.gather(
            *(
                chat(http, urls[i % 2], API_KEY, {**body(i), "max_tokens": completion})
                for i in range(REQUESTS)
            )
        )
    elapsed = time.monotonic() - started

    admitted = [o for o in outcomes if o.status == 200]
    refused = [o for o in outcomes if o.status == 429]
    others = [o for o in outcomes if o.status not in (200, 429)]

    async def settled() -> bool:
        row = await fetchrow(billing_db)
        return row is not None and row["requests"] == len(admitted) and row["reserved_usd"] == 0

    try:
        await wait_until(settled, within=20, what="every admitted request settled in the ledger")
    finally:
        stop.set()
        peak = await asyncio.wait_for(watcher, 10)
    row = await fetchrow(billing_db)
    assert row is not None
    spent: Decimal = row["cost_usd"]
    print(
        f"\n{REQUESTS} requests in {elapsed:.2f} s: {len(admitted)} admitted, {len(refused)} refused (429), "
        f"{len(others)} other; budget {budget} USD, spent {spent} USD, peak spent+held {peak} USD"
    )
    assert not others, f"only 200 or 429 expected, got {[(o.status, o.code) for o in others][:5]}"
    assert len(admitted) + len(refused) == REQUESTS
    assert all(o.code is None for o in admitted), "an admitted answer was cut short"
    assert len(admitted) == AFFORDABLE
    assert all(o.code == "insufficient_quota" and "cost limit" in o.message for o in refused)
    assert spent == worst * AFFORDABLE <= budget
    assert peak <= budget


def worst_case() -> Decimal:
    """Every request's cost, equal to its hold: max_tokens = the answer's length, to the last token."""
    prompt, completion = tokens(0)
    rate = ExpectedPrices().entries[("mock", "mock")][-1][1]
    return (prompt * rate[0] + completion * rate[1]) / MILLION


async def start_race(
    nats_url: str, billing_db: str, make_process: MakeProcess, budget: Decimal
) -> list[ServiceProcess]:
    """USER with a cost limit of `budget`, billing, and two gateways in front of it, started."""
    async with admin_session(billing_db, nats_url) as admin:
        await admin.create_user(USER, plan="basic")
        await admin.set_limits(USER, Override(cost_usd=budget))
    billing = billing_service(make_process, nats_url, billing_db)
    # 200 reserves arrive at once: on a shared 2-core machine the last can wait longer than the
    # default 0.5 s, and fail-closed 503s are not what this test is about (spend is).
    gateways = [
        gateway_service(
            make_process,
            f"gateway-{n}",
            nats_url,
            f"{API_KEY}:{USER}:basic",
            BILLING_ENABLED="true",
            BILLING_TIMEOUT_S="5",
        )
        for n in (1, 2)
    ]
    await asyncio.gather(billing.start(), *(g.start() for g in gateways))
    return gateways


async def fetchrow(dsn: str) -> asyncpg.Record | None:
    with contextlib.suppress(OSError):
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            return await conn.fetchrow(
                "SELECT requests, cost_usd, reserved_usd FROM usage_periods WHERE user_id = $1", USER
            )
        finally:
            await conn.close()
    return None
