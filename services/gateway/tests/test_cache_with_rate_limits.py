"""The response cache and the rate limits on one Redis, through the real gateway app on real Redis
and NATS (a scripted worker answers): the cache's read rides on the rate limit's round trip, a
refused request is never served from the cache, and the store of an answer waits for nobody but
a shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from nats.aio.client import Client as NATS
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lobe.devtools.waiting import eventually
from lobe.gateway.cache.key import PREFIX

from .support import ScriptedWorker, answers, serving
from .test_response_cache import DETERMINISTIC, post

ALWAYS = 100  # more scripted answers than any test asks for


@pytest.fixture
async def answering_worker(worker_nc: NATS) -> ScriptedWorker:
    return await ScriptedWorker(worker_nc, scripts=answers(ALWAYS, "cached words")).start()


@pytest.fixture
async def state(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def cached_keys(state: aioredis.Redis) -> list[bytes]:
    return [key async for key in state.scan_iter(match=f"{PREFIX}:*")]


def limits_file(tmp_path: Path, requests: int) -> Path:
    path = tmp_path / "rate_limits.yaml"
    path.write_text(
        "default_tier: free\n"
        f"tiers: {{free: {{requests: {requests}, tokens: 100000, concurrent: 4}}}}\n"
        "plans: {free: free}\n"
        "per_ip: {requests: 100, window_s: 900}\n"
    )
    return path


async def test_a_cacheable_requests_redis_read_rides_on_the_rate_limits_round_trip(
    nats_url: str,
    redis_url: str,
    state: aioredis.Redis,
    answering_worker: ScriptedWorker,
    spans: InMemorySpanExporter,
    tmp_path: Path,
) -> None:
    on = {"redis_url": redis_url, "rate_limits_enabled": True, "cache_enabled": True}
    config = limits_file(tmp_path, requests=10)
    async with serving(nats_url, rate_limits_file=config, **on) as first:
        status, headers, _ = await post(first, DETERMINISTIC)
        assert (status, headers["X-Cache"]) == (200, "miss")
        await eventually(lambda: cached_keys(state))
    # Another replica: nothing in its memory, so its lookup reads Redis.
    async with serving(nats_url, rate_limits_file=config, **on) as other:
        status, headers, _ = await post(other, DETERMINISTIC)
        assert (status, headers["X-Cache"]) == (200, "hit")
    redis = [s.name for s in spans.get_finished_spans() if (s.attributes or {}).get("db.system") == "redis"]
    reads = [name for name in redis if "GET" in name.split()]
    # One round trip each (one pipeline, one span): the limits' script run with the cache's read;
    # never the read alone. (On a Redis that has not seen the script yet, the first run is
    # refused with NOSCRIPT, the script loaded, and the pipeline sent again.)
    assert len(reads) >= 2
    assert set(reads) == {"EVALSHA GET PTTL"}, redis
    assert redis.count("SET") == 1  # the miss's answer, stored after it; the hit stores nothing


async def test_a_request_the_rate_limit_refuses_is_never_served_from_the_cache(
    nats_url: str, redis_url: str, state: aioredis.Redis, answering_worker: ScriptedWorker, tmp_path: Path
) -> None:
    on = {"redis_url": redis_url, "rate_limits_enabled": True, "cache_enabled": True}
    config = limits_file(tmp_path, requests=3)
    async with serving(nats_url, rate_limits_file=config, **on) as first:
        assert (await post(first, DETERMINISTIC))[1]["X-Cache"] == "miss"
        await eventually(lambda: cached_keys(state))
        assert (await post(first, DETERMINISTIC))[1]["X-Cache"] == "hit"  # from its memory
        async with serving(nats_url, rate_limits_file=config, **on) as other:
            status, headers, _ = await post(other, DETERMINISTIC)  # from Redis, read with the limits'
            assert (status, headers["X-Cache"]) == (200, "hit")
            asked = len(answering_worker.requests)
            for base in (first, other):  # the answer is in both memories and in Redis: not served
                status, headers, text = await post(base, DETERMINISTIC)
                assert status == 429, text
                assert "X-Cache" not in headers
                assert "rate_limit_exceeded" in text
    assert len(answering_worker.requests) == asked


async def test_an_answer_is_stored_after_the_client_has_it_and_a_shutdown_waits_for_the_store(
    nats_url: str, redis_url: str, state: aioredis.Redis, answering_worker: ScriptedWorker
) -> None:
    async with serving(nats_url, redis_url=redis_url, cache_enabled=True, redis_reply_timeout_s=10) as base:
        # Redis takes no write for 2 s (reads go on): the store waits, the client must not.
        await state.execute_command("CLIENT", "PAUSE", 2000, "WRITE")
        status, headers, _ = await post(base, DETERMINISTIC)
        assert (status, headers["X-Cache"]) == (200, "miss")
        assert await cached_keys(state) == []  # answered before the store
    # The gateway stopped (as on SIGTERM): it waited for the store it had started.
    assert len(await cached_keys(state)) == 1
