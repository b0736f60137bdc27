"""A stolen gateway credential cannot erase or rewrite what a worker's answer cost: the worker's
`usage.recorded` supersedes the gateway's `usage.reported` for the same request in whichever order
they arrive, and a `cache_hit` report counts only for a request billing admitted (it holds its
reservation). Played on a nats-server running the catalog's users: billing, the gateway and the
worker each connect with their own credentials, and the attacker publishes what the gateway's
may publish."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import asyncpg
import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import SecretStr

from lobe.billing.prices import load_prices
from lobe.billing.service import BillingService
from lobe.devtools.pytest_plugin import HARNESS_USER
from lobe.devtools.servers import NatsServer
from lobe.devtools.waiting import eventually
from lobe.shared.bus import ask, ensure_streams, inbox_prefix, publish_fact
from lobe.shared.catalog import BILLING, CHAT_WORKER, GATEWAY
from lobe.shared.events.billing import BUDGET_RESERVE, BudgetDecision, BudgetReserve
from lobe.shared.events.chat import TokenUsage
from lobe.shared.events.usage import USAGE_DEAD_LETTER, USAGE_RECORDED, USAGE_REPORTED, UsageRecorded

from ..e2e.conftest import billing_settings

USER = "alice"
REAL = TokenUsage(prompt_tokens=12_000, completion_tokens=3_000)


@asynccontextmanager
async def connected(server: NatsServer, principal: str) -> AsyncIterator[NATS]:
    assert server.users is not None
    nc = await nats.connect(
        server.url,
        name=principal,
        inbox_prefix=inbox_prefix(principal),
        **server.users.connect_kwargs(principal),
    )
    try:
        yield nc
    finally:
        await nc.close()


@pytest.fixture
async def bus(secured_nats: NatsServer, billing_db: str) -> AsyncIterator[dict[str, NATS]]:
    """Billing on its own credentials, and connections as the gateway, the worker and the harness."""
    assert secured_nats.users is not None
    async with connected(secured_nats, HARNESS_USER) as harness:
        await ensure_streams(harness.jetstream(), replicas=1)
        settings = billing_settings(
            secured_nats.url,
            billing_db,
            nats_user=BILLING,
            nats_password=SecretStr(secured_nats.users.passwords[BILLING]),
        )
        async with (
            BillingService(settings) as billing,
            connected(secured_nats, GATEWAY) as gateway,
            connected(secured_nats, CHAT_WORKER) as worker,
        ):
            assert billing.admin is not None
            await billing.admin.create_user(USER, plan="basic")
            yield {"gateway": gateway, "worker": worker, "harness": harness}


def usage(request_id: str, usage: TokenUsage, status: str, provider: str = "openai") -> UsageRecorded:
    return UsageRecorded.model_validate(
        {
            "request_id": request_id,
            "user_id": USER,
            "provider": provider,
            "deployment": "cache" if status == "cache_hit" else "openai-a",
            "model": "gpt-4o",
            "usage": usage.model_dump(),
            "status": status,
            "duration_ms": 5,
        }
    )


async def hold(gateway: NATS, request_id: str) -> None:
    """What the gateway does before dispatch: billing admits the request and holds its worst case."""
    reserve = BudgetReserve(
        request_id=request_id, user_id=USER, model="gpt-4o", prompt_tokens_estimate=100, max_output_tokens=16
    )
    reply = await ask(gateway, BUDGET_RESERVE, reserve.encode(), 5)
    assert reply is not None
    assert BudgetDecision.decode(reply).admitted


async def ledger(dsn: str, request_id: str) -> list[tuple[str, Decimal]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT status, cost_usd FROM usage_ledger WHERE request_id = $1", request_id)
        return [(r["status"], r["cost_usd"]) for r in rows]
    finally:
        await conn.close()


async def totals(dsn: str) -> tuple[int, Decimal, Decimal]:
    conn = await asyncpg.connect(dsn)
    try:
        period = await conn.fetchrow("SELECT requests, cost_usd FROM usage_periods WHERE user_id = $1", USER)
        rollups = await conn.fetchval("SELECT sum(cost_usd) FROM usage_rollups WHERE user_id = $1", USER)
        return period["requests"], period["cost_usd"], rollups
    finally:
        await conn.close()


def real_cost() -> Decimal:
    return load_prices().price("openai", "gpt-4o", usage("x", REAL, "ok").occurred_at, REAL).cost_usd


@pytest.mark.parametrize("forged_status", ["cache_hit", "worker_lost"])
async def test_a_forged_report_published_before_the_workers_record_does_not_erase_its_cost(
    bus: dict[str, NATS], billing_db: str, forged_status: str
) -> None:
    await hold(bus["gateway"], "r1")
    tiny = TokenUsage(prompt_tokens=1, completion_tokens=0)
    forged = usage("r1", tiny, "cache_hit")
    if forged_status == "worker_lost":
        forged = usage("r1", tiny, "error").model_copy(update={"error_code": "worker_lost"})
    assert await publish_fact(bus["gateway"].jetstream(), USAGE_REPORTED, forged)

    async def forged_landed() -> bool:
        return len(await ledger(billing_db, "r1")) == 1

    await eventually(forged_landed, within_s=20)  # first, as the attacker wanted
    assert await publish_fact(bus["worker"].jetstream(), USAGE_RECORDED, usage("r1", REAL, "ok"))

    async def superseded() -> bool:
        return [s for s, _ in await ledger(billing_db, "r1")] == ["ok"]

    await eventually(superseded, within_s=20)
    assert await ledger(billing_db, "r1") == [("ok", real_cost())]
    assert await totals(billing_db) == (1, real_cost(), real_cost())


async def test_a_report_published_after_the_workers_record_changes_nothing(
    bus: dict[str, NATS], billing_db: str
) -> None:
    await hold(bus["gateway"], "r2")
    assert await publish_fact(bus["worker"].jetstream(), USAGE_RECORDED, usage("r2", REAL, "ok"))

    async def recorded() -> bool:
        return len(await ledger(billing_db, "r2")) == 1

    await eventually(recorded, within_s=20)
    forged = usage("r2", TokenUsage(prompt_tokens=1, completion_tokens=0), "cache_hit")
    assert await publish_fact(bus["gateway"].jetstream(), USAGE_REPORTED, forged)
    await dead_letter_of(bus["harness"], "r2")
    assert await ledger(billing_db, "r2") == [("ok", real_cost())]
    assert await totals(billing_db) == (1, real_cost(), real_cost())


async def test_a_cache_hit_report_for_a_request_billing_never_admitted_is_not_counted(
    bus: dict[str, NATS], billing_db: str
) -> None:
    invented = usage("never-admitted", REAL, "cache_hit")
    assert await publish_fact(bus["gateway"].jetstream(), USAGE_REPORTED, invented)
    dead = await dead_letter_of(bus["harness"], "never-admitted")
    assert "admitted" in dead["reason"]
    assert await ledger(billing_db, "never-admitted") == []


async def test_a_cache_hit_report_for_an_admitted_request_is_counted_at_the_cache_price(
    bus: dict[str, NATS], billing_db: str
) -> None:
    await hold(bus["gateway"], "r3")
    assert await publish_fact(bus["gateway"].jetstream(), USAGE_REPORTED, usage("r3", REAL, "cache_hit"))

    async def counted() -> bool:
        return len(await ledger(billing_db, "r3")) == 1

    await eventually(counted, within_s=20)
    assert await ledger(billing_db, "r3") == [("cache_hit", Decimal(0))]  # the bundled table: free


async def dead_letter_of(harness: NATS, request_id: str) -> dict[str, str]:
    sub = await harness.jetstream().pull_subscribe(
        USAGE_DEAD_LETTER,
        stream="USAGE",
        config=ConsumerConfig(filter_subject=USAGE_DEAD_LETTER, deliver_policy=DeliverPolicy.ALL),
    )
    async with asyncio.timeout(20):
        while True:
            for msg in await sub.fetch(1, timeout=20):
                dead = json.loads(msg.data)
                if json.loads(dead["payload"])["request_id"] == request_id:
                    return dead
