"""A gateway holding a budget lease is SIGKILLed mid-stream: the answer's usage still reaches the
ledger (the worker records it, charged to the lease), the lease nobody returns expires, and the
user's budget is whole again: nothing held, spent exactly what the ledger says."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from functools import partial

import aiohttp
import asyncpg

from lobe.billing.admin import admin_session
from lobe.billing.plans import Override
from lobe.chat_worker.service import ChatWorker
from lobe.devtools.suite.fixtures import MakeProcess

from .conftest import billing_service, chat, fetchval, gateway_service, wait_until
from .test_budget_under_concurrency import API_KEY as RACE_KEY
from .test_budget_under_concurrency import body, fetchrow, start_race, tokens, watch_peak, worst_case

USER = "kim"
API_KEY = "sk-fault-kim"
QUESTION = {
    "model": "mock-slow",
    "messages": [{"role": "user", "content": "tell me a story"}],
    "max_tokens": 64,
}
# A short term and hold lifetime: the dead gateway's lease expires within seconds (the sweep runs
# every 10 s), not the production 30 s + 15 min.
BILLING_ENV = {"BILLING_LEASE_TERM_S": "5", "BILLING_RESERVATION_TTL_S": "2"}


async def test_a_gateway_killed_mid_stream_under_a_lease_loses_no_usage_and_its_lease_expires(
    nats_url: str, billing_db: str, make_process: MakeProcess, worker: ChatWorker
) -> None:
    async with admin_session(billing_db, nats_url) as admin:
        await admin.create_user(USER, plan="basic")
        await admin.set_limits(USER, Override(requests=1000))
    billing = billing_service(make_process, nats_url, billing_db, **BILLING_ENV)
    gateway = gateway_service(
        make_process,
        "gateway",
        nats_url,
        f"{API_KEY}:{USER}:basic",
        BILLING_ENABLED="true",
        BILLING_TIMEOUT_S="5",
    )
    await asyncio.gather(billing.start(), gateway.start())

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        # The first request of the user and model takes the exact hold and asks for a lease.
        first = await chat(http, gateway.url, API_KEY, {**QUESTION, "stream": False})
        assert (first.status, first.code) == (200, None)
        await wait_until(partial(_leased, billing_db), 10, "a lease granted")
        lease_id, size = await _lease(billing_db)
        await asyncio.sleep(0.2)  # the grant's reply reaches the gateway just after its commit
        async with http.post(
            f"{gateway.url}/v1/chat/completions",
            json={**QUESTION, "stream": True},
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as response:
            assert response.status == 200
            streamed = response.headers["X-Request-Id"]
            await response.content.readline()  # the first event: the answer is under way
            # Admitted under the lease: no hold of its own.
            assert (
                await fetchval(
                    billing_db, "SELECT count(*) FROM reservations WHERE request_id = $1", streamed
                )
                == 0
            )
            await gateway.kill()

    # The worker finishes the answer for nobody and records it; it settles against the lease.
    await wait_until(
        partial(_in_ledger, billing_db, streamed), 30, "the killed gateway's request in the ledger"
    )
    # The lease nobody returned expires, and nothing is held any more.
    await wait_until(partial(_nothing_held, billing_db), 40, "the lease expired")
    conn = await asyncpg.connect(billing_db)
    try:
        period = await conn.fetchrow("SELECT * FROM usage_periods WHERE user_id = $1", USER)
        ledger = await conn.fetchrow(
            "SELECT count(*) AS n, sum(cost_usd) AS cost, sum(prompt_tokens + completion_tokens) AS tokens "
            "FROM usage_ledger WHERE user_id = $1",
            USER,
        )
    finally:
        await conn.close()
    print(f"\nlease {lease_id} of {size} requests expired after its gateway was SIGKILLed mid-stream")
    assert ledger["n"] == 2 == period["requests"]
    assert period["cost_usd"] == ledger["cost"] > Decimal(0)
    assert period["tokens"] == ledger["tokens"]
    assert (period["reserved_usd"], period["reserved_requests"], period["reserved_tokens"]) == (0, 0, 0)


async def _leased(dsn: str) -> bool:
    return bool(await fetchval(dsn, "SELECT count(*) FROM reservations WHERE user_id = $1 AND lease", USER))


async def _lease(dsn: str) -> tuple[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT request_id, requests FROM reservations WHERE user_id = $1 AND lease", USER
        )
    finally:
        await conn.close()
    return row["request_id"], row["requests"]


async def _in_ledger(dsn: str, rid: str) -> bool:
    return bool(await fetchval(dsn, "SELECT count(*) FROM usage_ledger WHERE request_id = $1", rid))


async def _nothing_held(dsn: str) -> bool:
    return not await fetchval(dsn, "SELECT count(*) FROM reservations WHERE user_id = $1", USER)


async def test_spend_never_passes_the_budget_with_leases_in_play_through_two_gateways(
    nats_url: str, billing_db: str, make_process: MakeProcess, worker: ChatWorker
) -> None:
    """The race of test_budget_under_concurrency far from the limit, where the gateways admit under
    leases, run on past it: never more admitted than the budget affords, spent + held never above
    it, and once the gateways stop (returning their leases) nothing held."""
    _, completion = tokens(0)
    worst = worst_case()
    affordable = 200
    budget = worst * affordable + worst / 2
    gateways = await start_race(nats_url, billing_db, make_process, budget)
    stop = asyncio.Event()
    peak = asyncio.create_task(watch_peak(billing_db, stop))
    leases = asyncio.create_task(_most_leases(billing_db, stop))
    outcomes = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
        for wave in range(6):  # 600 requests, 100 at once: leases are granted, renewed, then refused
            outcomes += await asyncio.gather(
                *(
                    chat(http, gateways[i % 2].url, RACE_KEY, {**body(i), "max_tokens": completion})
                    for i in range(wave * 100, wave * 100 + 100)
                )
            )
    await asyncio.gather(*(g.stop() for g in gateways))  # SIGTERM: their leases go back
    admitted = [o for o in outcomes if o.status == 200]

    async def settled() -> bool:
        row = await fetchrow(billing_db)
        return row is not None and row["requests"] == len(admitted) and row["reserved_usd"] == 0

    try:
        await wait_until(settled, within=30, what="every admitted request settled, every lease returned")
    finally:
        stop.set()
        highest, most_leases = await asyncio.wait_for(peak, 10), await asyncio.wait_for(leases, 10)
    row = await fetchrow(billing_db)
    assert row is not None
    print(
        f"\n600 requests: {len(admitted)} admitted of {affordable} affordable, up to {most_leases} leases "
        f"live at once; budget {budget} USD, spent {row['cost_usd']} USD, peak spent+held {highest} USD"
    )
    assert most_leases > 0, "no lease was granted: the test did not exercise leases"
    assert all(o.status in (200, 429) for o in outcomes)
    assert all(o.code is None for o in admitted), "an admitted answer was cut short"
    assert len(admitted) <= affordable
    assert row["cost_usd"] == worst * len(admitted) <= budget
    assert highest <= budget
    assert await fetchval(billing_db, "SELECT count(*) FROM reservations") == 0


async def _most_leases(dsn: str, stop: asyncio.Event) -> int:
    most = 0
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        while not stop.is_set():
            most = max(most, await conn.fetchval("SELECT count(*) FROM reservations WHERE lease"))
            await asyncio.sleep(0.005)
    finally:
        await conn.close()
    return most
