"""Acceptance (issue 8): a cache hit is served with no chat worker running, in the same SSE shape
as the live answer, and leaves one usage event marked cached, which billing records at the cache
price (free with the bundled price table)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import asyncpg
import openai
import redis.asyncio as aioredis

from lobe.billing.admin import admin_session
from lobe.billing.service import BillingService

from .conftest import API_KEY, billing_settings, start_gateway, start_worker
from .test_budgets import ledger_cost

REQUEST = {
    "model": "mock",
    "temperature": 0,
    "stream": True,
    "stream_options": {"include_usage": True},
    "messages": [{"role": "user", "content": "Say the same thing twice."}],
}


async def sse(http: aiohttp.ClientSession, base: str) -> tuple[dict[str, str], list[Any]]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with http.post(f"{base}/v1/chat/completions", json=REQUEST, headers=headers) as response:
        assert response.status == 200
        text = await response.text()
    events = [line.removeprefix("data: ") for line in text.split("\n\n") if line.startswith("data: ")]
    return dict(response.headers), [e if e == "[DONE]" else json.loads(e) for e in events]


def shape(chunks: list[Any]) -> list[Any]:
    """What a client parses, less what differs between two answers: id, time and the cost."""
    out = []
    for chunk in chunks:
        if isinstance(chunk, dict):
            chunk = {**chunk, "id": None, "created": None}
            if chunk.get("usage"):
                chunk["usage"] = {k: v for k, v in chunk["usage"].items() if k != "cost"}
        out.append(chunk)
    return out


async def test_a_cache_hit_needs_no_worker_streams_like_the_live_answer_and_is_billed_as_cached(
    nats_url: str, billing_db: str, redis_url: str
) -> None:
    async with admin_session(billing_db, nats_url) as admin:
        await admin.create_user("alice", plan="basic")
    conn = await asyncpg.connect(billing_db)
    cache = aioredis.Redis.from_url(redis_url)
    async with (
        BillingService(billing_settings(nats_url, billing_db, "admin")),
        aiohttp.ClientSession() as http,
    ):
        worker = await start_worker(nats_url)
        runner, base = await start_gateway(
            nats_url, billing_enabled=True, cache_enabled=True, cache_redis_url=redis_url
        )
        try:
            live_headers, live = await sse(http, base)
            assert live_headers["X-Cache"] == "miss"
            for _ in range(200):  # stored in the background once the answer is complete
                if await cache.keys("lobe:cache:*"):
                    break
                await asyncio.sleep(0.02)
            await worker.stop()  # from here on, no chat worker is running

            hit_headers, hit = await sse(http, base)
            assert hit_headers["X-Cache"] == "hit"
            assert shape(hit) == shape(live)
            assert live[-2]["usage"]["cost"] > 0
            assert hit[-2]["usage"]["cost"] == 0  # the bundled price table: cache hits are free

            client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key=API_KEY, max_retries=0)
            stream = await client.chat.completions.create(
                **{k: v for k, v in REQUEST.items() if k != "stream"}, stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert text == "".join(c["choices"][0]["delta"].get("content", "") for c in live[:-2])

            hit_id = hit[0]["id"].removeprefix("chatcmpl-")
            assert await ledger_cost(billing_db, hit_id) == 0
            rows = await conn.fetch(
                "SELECT status, deployment FROM usage_ledger WHERE request_id = $1", hit_id
            )
            assert [tuple(r) for r in rows] == [("cache_hit", "cache")]
        finally:
            await runner.cleanup()
            await cache.aclose()
            await conn.close()
