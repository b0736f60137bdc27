"""Helpers for billing tests: settings, events as the chat worker publishes them, polling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import nats
import pytest
from pydantic import SecretStr

from lobe.billing.responders import Budgets, KeyOwners, Resolve, respond
from lobe.billing.settings import BillingSettings
from lobe.shared.bus import Bus, MemoryBus, ask
from lobe.shared.catalog import BILLING
from lobe.shared.events.chat import TokenUsage
from lobe.shared.events.usage import USAGE_RECORDED, UsageRecorded

ADMIN_TOKEN = "test-admin-token"


def make_settings(nats_url: str, database_url: str, **overrides: Any) -> BillingSettings:
    values: dict[str, Any] = {
        "nats_url": nats_url,
        "database_url": SecretStr(database_url),
        "ops_host": "127.0.0.1",
        "ops_port": 0,
        "billing_admin_token": SecretStr(ADMIN_TOKEN),
        "billing_fetch_timeout_s": 0.2,
    }
    values.update(overrides)
    return BillingSettings(**values)


def usage_event(
    request_id: str,
    user_id: str = "u1",
    model: str = "mock",
    provider: str = "mock",
    prompt: int = 100,
    completion: int = 50,
    cached: int = 0,
    occurred_at: datetime | None = None,
) -> UsageRecorded:
    return UsageRecorded(
        request_id=request_id,
        user_id=user_id,
        provider=provider,
        deployment=provider,
        model=model,
        usage=TokenUsage(prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached),
        status="ok",
        duration_ms=12.5,
        occurred_at=occurred_at or datetime.now(UTC),
    )


async def publish_usage(
    nats_url: str, events: list[UsageRecorded | bytes], subject: str = USAGE_RECORDED
) -> None:
    """Publish like the chat worker does (or the gateway, on `usage.reported`); raw bytes are
    published as they are (malformed input)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for e in events:
            if isinstance(e, bytes):
                await js.publish(subject, e)
            else:
                # A distinct msg id per publish: duplicates must reach billing, not stop at the stream.
                await js.publish(subject, e.encode())
    finally:
        await nc.close()


async def wait_for(check: Callable[[], Awaitable[bool]], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not met within {within} s")


async def wait_for_ledger(dsn: str, rows: int) -> None:
    """Wait until the ledger holds exactly `rows` rows."""

    async def settled() -> bool:
        return int(await fetchval(dsn, "SELECT count(*) FROM usage_ledger")) == rows

    await wait_for(settled)


async def fetchval(dsn: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


Ask = Callable[
    ..., Awaitable[bytes | None]
]  # (subject, body, wait_s=...) -> the reply's body; None: no answer


@asynccontextmanager
async def responding(
    request: pytest.FixtureRequest, owners: KeyOwners, budgets: Budgets, resolve: Resolve
) -> AsyncIterator[Ask]:
    """Billing's responders on the bus, in memory (`request.param` "memory") or on a real
    nats-server asked as the gateway asks (lobe.shared.bus.ask: silence is an answer)."""
    if request.param == "memory":
        memory = MemoryBus(BILLING)
        await respond(memory, owners, budgets, resolve)

        async def in_memory(subject: str, body: bytes, wait_s: float = 10.0) -> bytes | None:
            return await memory.ask(subject, body) or None

        yield in_memory
        await memory.stop_handlers()
        return
    url = request.getfixturevalue("nats_url")
    responder_nc, gateway_nc = await nats.connect(url), await nats.connect(url)
    bus = Bus.over(responder_nc, BILLING)
    await respond(bus, owners, budgets, resolve)

    async def on_the_wire(subject: str, body: bytes, wait_s: float = 10.0) -> bytes | None:
        return await ask(gateway_nc, subject, body, wait_s) or None

    try:
        yield on_the_wire
    finally:
        await bus.stop_handlers()
        await responder_nc.close()
        await gateway_nc.close()
