"""The response cache through the real gateway app, on real Redis and NATS with a scripted worker:
what is cached, a hit in the exact shape of the live answer with no worker involved and one usage
event marked cache_hit, the Redis tier shared by replicas, per-user scope, admin invalidation."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from nats.aio.client import Client as NATS

from lobe.gateway.auth.session_tokens import SessionClaims, TokenSigner
from lobe.gateway.auth.signing_keys import load_key_ring, new_signing_key
from lobe.shared.events.usage import USAGE_REPORTED, UsageRecorded

from .support import KEY, ScriptedWorker, collected, serving

SESSION_KEYS = json.dumps({"keys": [new_signing_key("k1")]})
AUTH = {"Authorization": f"Bearer {KEY}"}
KEYS = f"{KEY}:alice:free,sk-bob:bob:free"
DETERMINISTIC = {"model": "mock", "temperature": 0, "messages": [{"role": "user", "content": "hi"}]}


async def post(
    base: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, Any, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base}/v1/chat/completions", json=body, headers=headers or AUTH) as response,
    ):
        return response.status, response.headers, await response.text()


def chunks(sse: str) -> list[Any]:
    """The SSE events, without what differs between any two answers (id, created)."""
    events = [line.removeprefix("data: ") for line in sse.split("\n\n") if line.startswith("data: ")]
    return [e if e == "[DONE]" else {**json.loads(e), "id": None, "created": None} for e in events]


def completion(text: str) -> dict[str, Any]:
    return {**json.loads(text), "id": None, "created": None}


@pytest.fixture
async def cached(nats_url: str, redis_url: str, cached_words_worker: ScriptedWorker) -> AsyncIterator[str]:
    async with serving(
        nats_url,
        cache_enabled=True,
        cache_redis_url=redis_url,
        gateway_api_keys=KEYS,
        redis_url=redis_url,  # sessions' revocations
        session_keys=SESSION_KEYS,
    ) as base:
        yield base


async def stored(
    cached_words_worker: ScriptedWorker,
    base: str,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> None:
    """Wait until the answer to `body` is in the cache (it is stored after the answer, in the
    background), proven by the next identical request not reaching the cached_words_worker."""
    for _ in range(100):
        before = len(cached_words_worker.requests)
        _, answered, _ = await post(base, body, headers)
        if answered["X-Cache"] == "hit":
            assert len(cached_words_worker.requests) == before
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the answer was never cached")


async def test_a_hit_streams_exactly_like_the_live_answer_without_a_worker_and_records_one_cached_usage(
    cached: str, cached_words_worker: ScriptedWorker, nc: NATS
) -> None:
    streamed = {**DETERMINISTIC, "stream": True, "stream_options": {"include_usage": True}}
    status, headers, live = await post(cached, streamed)
    assert (status, headers["X-Cache"]) == (200, "miss")
    await stored(cached_words_worker, cached, DETERMINISTIC)
    usage = await collected(nc, USAGE_REPORTED, UsageRecorded)  # the gateway records a hit's usage
    asked = len(cached_words_worker.requests)
    status, headers, hit = await post(cached, streamed)
    assert (status, headers["X-Cache"], headers["Content-Type"]) == (
        200,
        "hit",
        "text/event-stream; charset=utf-8",
    )
    assert chunks(hit) == chunks(live)  # role, content, finish, usage chunk, [DONE]
    assert chunks(hit)[-2]["usage"]["total_tokens"] == 5
    assert len(cached_words_worker.requests) == asked  # no worker was asked
    for _ in range(100):
        if usage:
            break
        await asyncio.sleep(0.02)
    [event] = usage
    assert (event.status, event.deployment, event.provider, event.user_id) == (
        "cache_hit",
        "cache",
        "mock",
        "alice",
    )
    assert (event.usage.prompt_tokens, event.usage.completion_tokens, event.stream) == (3, 2, True)


async def test_a_non_streaming_hit_is_the_same_json_object_as_the_live_answer(
    cached: str, cached_words_worker: ScriptedWorker
) -> None:
    _, _, live = await post(cached, DETERMINISTIC)
    await stored(cached_words_worker, cached, DETERMINISTIC)
    _, headers, hit = await post(cached, DETERMINISTIC)
    assert headers["X-Cache"] == "hit"
    assert completion(hit) == completion(live)
    assert completion(hit)["choices"][0]["message"]["content"] == "cached words"


async def test_only_deterministic_or_opted_in_requests_are_cached(
    cached: str, cached_words_worker: ScriptedWorker
) -> None:
    warm = {**DETERMINISTIC, "temperature": 0.7}
    for _ in range(2):
        _, headers, _ = await post(cached, warm)
        assert "X-Cache" not in headers
    assert len(cached_words_worker.requests) == 2
    await post(cached, warm, {**AUTH, "X-Lobe-Cache": "on"})
    await stored(cached_words_worker, cached, warm, {**AUTH, "X-Lobe-Cache": "on"})
    _, headers, _ = await post(cached, DETERMINISTIC, {**AUTH, "X-Lobe-Cache": "off"})
    assert "X-Cache" not in headers


async def test_requests_differing_only_in_stream_user_or_metadata_share_an_answer_others_do_not(
    cached: str, cached_words_worker: ScriptedWorker
) -> None:
    await post(cached, DETERMINISTIC)
    await stored(cached_words_worker, cached, DETERMINISTIC)
    same = [
        {**DETERMINISTIC, "stream": True},
        {**DETERMINISTIC, "user": "someone", "metadata": {"a": "b"}},
    ]
    for body in same:
        assert (await post(cached, body))[1]["X-Cache"] == "hit"
    different = [
        {**DETERMINISTIC, "messages": [{"role": "user", "content": "hi!"}]},
        {**DETERMINISTIC, "max_tokens": 5},
        {**DETERMINISTIC, "model": "mock-2"},
    ]
    for body in different:
        assert (await post(cached, body))[1]["X-Cache"] == "miss"


async def test_answers_are_per_user_unless_the_scope_is_shared(
    nats_url: str, redis_url: str, cached_words_worker: ScriptedWorker
) -> None:
    bob = {"Authorization": "Bearer sk-bob"}
    async with serving(
        nats_url, cache_enabled=True, cache_redis_url=redis_url, gateway_api_keys=KEYS
    ) as base:
        await post(base, DETERMINISTIC)
        await stored(cached_words_worker, base, DETERMINISTIC)
        assert (await post(base, DETERMINISTIC, bob))[1]["X-Cache"] == "miss"
    async with serving(
        nats_url, cache_enabled=True, cache_redis_url=redis_url, gateway_api_keys=KEYS, cache_scope="shared"
    ) as base:
        await post(base, DETERMINISTIC)
        await stored(cached_words_worker, base, DETERMINISTIC)
        assert (await post(base, DETERMINISTIC, bob))[1]["X-Cache"] == "hit"


async def test_another_replica_is_answered_from_the_shared_redis_tier(
    nats_url: str, redis_url: str, cached: str, cached_words_worker: ScriptedWorker
) -> None:
    await post(cached, DETERMINISTIC)
    await stored(cached_words_worker, cached, DETERMINISTIC)
    asked = len(cached_words_worker.requests)
    async with serving(
        nats_url, cache_enabled=True, cache_redis_url=redis_url, gateway_api_keys=KEYS
    ) as other:
        _, headers, _ = await post(other, DETERMINISTIC)
    assert headers["X-Cache"] == "hit"
    assert len(cached_words_worker.requests) == asked


def session(role: str) -> str:
    """A session token the gateway accepts, for a user of `role`."""
    ring = load_key_ring(SESSION_KEYS, None)
    assert ring is not None
    now = int(time.time())
    claims = {"sub": "ops", "email": "ops@corp.example", "role": role, "plan": "free", "sid": f"s-{role}"}
    return TokenSigner(ring).sign_session(SessionClaims(**claims, iat=now, exp=now + 600))


async def admin(base: str, body: dict[str, Any], token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token or session('admin')}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base}/v1/admin/cache/invalidate", json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def test_an_admin_invalidates_a_users_answers_on_every_replica_and_nobody_else_may(
    nats_url: str, redis_url: str, cached: str, cached_words_worker: ScriptedWorker
) -> None:
    bob = {"Authorization": "Bearer sk-bob"}
    async with serving(
        nats_url, cache_enabled=True, cache_redis_url=redis_url, gateway_api_keys=KEYS
    ) as other:
        for base in (cached, other):  # both replicas hold both users' answers in memory
            for who in (AUTH, bob):
                await post(base, DETERMINISTIC, who)
        await stored(cached_words_worker, cached, DETERMINISTIC)
        assert (await admin(cached, {}, token=KEY))[0] == 401  # an API key is not a session
        assert (await admin(cached, {}, token=session("user")))[0] == 403
        assert (await admin(cached, {"user": "alice"}))[0] == 400
        status, body = await admin(cached, {"user_id": "alice"})
        assert (status, body["invalidated"]) == (200, 1)
        await asyncio.sleep(0.2)  # the fact reaches the other replica
        assert (await post(other, DETERMINISTIC))[1]["X-Cache"] == "miss"
        assert (await post(other, DETERMINISTIC, bob))[1]["X-Cache"] == "hit"


async def test_an_unreachable_cache_redis_is_a_miss_never_an_error(
    nats_url: str, cached_words_worker: ScriptedWorker
) -> None:
    async with serving(nats_url, cache_enabled=True, cache_redis_url="redis://127.0.0.1:1/0") as base:
        replies = [await post(base, DETERMINISTIC) for _ in range(3)]
    assert [status for status, _, _ in replies] == [200, 200, 200]
