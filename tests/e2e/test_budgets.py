"""Budget admission and cost reporting through the gateway, with billing running for real."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import asyncpg
import nats
import openai
import pytest

from lobe.billing.admin import admin_session
from lobe.billing.plans import Override
from lobe.billing.service import BillingService

from .conftest import API_KEY, Suite, billing_settings, start_gateway, start_worker
from .test_chat_path import MESSAGES

ADMIN_TOKEN = "e2e-admin-token"


async def ledger_cost(dsn: str, request_id: str, timeout_s: float = 10.0) -> Decimal:
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            cost = await conn.fetchval("SELECT cost_usd FROM usage_ledger WHERE request_id = $1", request_id)
            if cost is not None:
                return Decimal(cost)
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    raise AssertionError(f"request {request_id} never reached the ledger")


@pytest.fixture
async def billed(nats_url: str, billing_db: str) -> AsyncIterator[Suite]:
    """Gateway with budget admission on, a worker, and billing on a fresh database."""
    async with BillingService(billing_settings(nats_url, billing_db, ADMIN_TOKEN)) as billing:
        assert billing.admin is not None
        await billing.admin.create_user("alice", plan="basic")
        worker = await start_worker(nats_url)
        runner, base_url = await start_gateway(nats_url, billing_enabled=True)
        nc = await nats.connect(nats_url)
        async with aiohttp.ClientSession() as http:
            client = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=API_KEY)
            yield Suite(
                base_url, nats_url, nc, client, http, billing_url=f"http://127.0.0.1:{billing.ops_port}"
            )
        await nc.close()
        await runner.cleanup()
        await worker.stop()


async def test_final_usage_chunk_carries_the_cost_billing_records(billed: Suite, billing_db: str) -> None:
    stream = await billed.client.chat.completions.create(
        model="mock", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    usage, completion_id = None, ""
    async for chunk in stream:
        completion_id = chunk.id
        usage = chunk.usage or usage
    assert usage is not None
    quoted = Decimal(str(usage.model_extra["cost"]))  # type: ignore[index]
    recorded = await ledger_cost(billing_db, completion_id.removeprefix("chatcmpl-"))
    assert quoted > 0
    assert abs(quoted - recorded) < Decimal("0.000000001")


async def test_non_streaming_response_has_the_cost_header(billed: Suite, billing_db: str) -> None:
    raw = await billed.client.chat.completions.with_raw_response.create(model="mock", messages=MESSAGES)
    recorded = await ledger_cost(billing_db, raw.headers["x-request-id"])
    assert Decimal(raw.headers["x-lobe-cost-usd"]) == recorded.quantize(Decimal("0.000001"))


async def test_over_budget_is_429_insufficient_quota_naming_the_limit(billed: Suite, billing_db: str) -> None:
    async with admin_session(billing_db, billed.nats_url) as admin:
        await admin.set_limits("alice", Override(cost_usd=Decimal("0.0000001")))
    with pytest.raises(openai.RateLimitError) as caught:
        await billed.client.chat.completions.create(model="mock", messages=MESSAGES)
    assert caught.value.code == "insufficient_quota"
    assert "cost limit" in caught.value.message


@pytest.mark.parametrize(("mode", "status"), [("closed", 503), ("open", 200)])
async def test_billing_unreachable_follows_the_fail_mode(suite: Suite, mode: str, status: int) -> None:
    runner, base_url = await start_gateway(
        suite.nats_url, billing_enabled=True, budget_fail_mode=mode, billing_timeout_s=0.2
    )
    try:
        async with suite.http.post(
            f"{base_url}/v1/chat/completions",
            json={"model": "mock", "messages": MESSAGES},
            headers=suite.headers(),
        ) as response:
            body = await response.json()
            assert response.status == status
    finally:
        await runner.cleanup()
    if status == 503:
        assert body["error"]["code"] == "billing_unavailable"
    else:
        assert body["choices"][0]["finish_reason"] == "stop"


async def test_a_key_issued_by_billing_works_at_the_gateway_until_revoked(billed: Suite) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    billing_url = billed.billing_url
    async with billed.http.post(
        f"{billing_url}/v1/admin/users/alice/keys", json={"name": "e2e"}, headers=admin
    ) as r:
        assert r.status == 201
        issued = await r.json()
    client = openai.AsyncOpenAI(base_url=f"{billed.base_url}/v1", api_key=issued["key"])
    completion = await client.chat.completions.create(model="mock", messages=MESSAGES)
    assert completion.choices[0].finish_reason == "stop"
    async with billed.http.delete(f"{billing_url}/v1/admin/keys/{issued['id']}", headers=admin) as r:
        assert r.status == 200
    # The revocation is announced on the bus: the gateway's cache drops the key without waiting out its TTL.
    refused: openai.AuthenticationError | None = None
    for _ in range(50):
        try:
            await client.chat.completions.create(model="mock", messages=MESSAGES)
        except openai.AuthenticationError as exc:
            refused = exc
            break
        await asyncio.sleep(0.02)
    assert refused is not None, "revoked key still accepted after 1 s"
    assert refused.code == "invalid_api_key"
