"""Rate limits through the real gateway app on real Redis and NATS (a scripted worker answers):
exact counts, the headers on every answer, 429s in OpenAI's format, tokens corrected with the real
usage, per-IP limits before authentication, and Redis outages following the fail mode."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from multidict import CIMultiDictProxy
from nats.aio.client import Client as NATS

from lobe.devtools.servers import RedisServer
from lobe.gateway.ratelimit.limiter import hit_or_fail_mode, token_estimate
from lobe.gateway.ratelimit.outage import RedisOutage
from lobe.gateway.ratelimit.windows import SlidingWindows, Window
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.openai_errors import ApiError

from .support import KEY, ScriptedWorker, answers, serving

AUTH = {"Authorization": f"Bearer {KEY}"}
ALWAYS = 100  # more scripted answers than any test asks for


@dataclass
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: str

    def error(self) -> dict[str, Any]:
        return dict(json.loads(self.body)["error"])


async def chat(
    base: str, stream: bool = False, headers: dict[str, str] | None = None, **extra: object
) -> Reply:
    body = {"model": "mock", "stream": stream, "messages": [{"role": "user", "content": "hi"}], **extra}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base}/v1/chat/completions", json=body, headers=headers or AUTH) as response,
    ):
        return Reply(response.status, response.headers, await response.text())


@pytest.fixture
async def answering_worker(worker_nc: NATS) -> ScriptedWorker:
    return await ScriptedWorker(worker_nc, scripts=answers(ALWAYS)).start()


@pytest.fixture
async def limited(nats_url: str, redis_url: str, answering_worker: ScriptedWorker) -> AsyncIterator[str]:
    async with serving(nats_url, redis_url=redis_url, rate_limits_enabled=True) as base:
        yield base


async def tokens_charged(state: aioredis.Redis, tokens: int) -> None:
    for _ in range(200):
        if await state.get("lobe:rl:{u:alice}:tokens:sum") == str(tokens).encode():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"alice's token window never held {tokens}")


def limits_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rate_limits.yaml"
    path.write_text(text)
    return path


async def test_a_free_plan_user_gets_exactly_10_requests_a_minute_with_headers_on_every_answer(
    limited: str,
) -> None:
    replies = [await chat(limited, stream=i % 2 == 0) for i in range(12)]  # SSE and JSON alike
    assert [r.status for r in replies] == [200] * 10 + [429] * 2
    assert [r.headers["RateLimit-Remaining"] for r in replies] == [str(n) for n in range(9, -1, -1)] + [
        "0"
    ] * 2
    for reply in replies:
        assert reply.headers["RateLimit-Limit"] == reply.headers["x-ratelimit-limit-requests"] == "10"
        assert reply.headers["RateLimit-Policy"] == "10;w=60"
        assert reply.headers["x-ratelimit-remaining-requests"] == reply.headers["RateLimit-Remaining"]
        assert int(reply.headers["RateLimit-Reset"]) in range(1, 61)
    for reply in replies[:10]:  # a refusal before the parse never learnt what the request weighs
        assert reply.headers["x-ratelimit-limit-tokens"] == "40000"
    refused = replies[-1]
    assert refused.error()["type"] == "rate_limit_error"
    assert refused.error()["code"] == "rate_limit_exceeded"
    assert int(refused.headers["Retry-After"]) in range(1, 61)
    assert 0 < int(refused.headers["retry-after-ms"]) <= 60_000


async def test_health_and_readiness_are_never_limited(limited: str) -> None:
    # /metrics is on the ops listener (OPS_PORT), which has no limiter at all.
    for _ in range(11):
        await chat(limited)
    async with aiohttp.ClientSession() as http:
        for path in ("/api/health", "/api/ready"):
            for _ in range(20):
                async with http.get(f"{limited}{path}") as response:
                    assert response.status == 200, path
                    assert "RateLimit-Limit" not in response.headers


async def test_tokens_are_admitted_on_the_estimate_and_corrected_with_the_real_usage(
    nats_url: str, redis_url: str, answering_worker: ScriptedWorker, tmp_path: Path
) -> None:
    # The window charges the prompt's upper bound P (the budget hold's) plus max_tokens up front:
    # room for P + 95, whatever P is.
    hi = {"model": "mock", "messages": [{"role": "user", "content": "hi"}]}  # what chat() sends
    prompt = token_estimate(ChatCompletionRequest.model_validate(hi))  # P: no max_tokens
    config = limits_file(
        tmp_path,
        f"default_tier: t\ntiers: {{t: {{requests: 100, tokens: {prompt + 95}}}}}\n"
        "per_ip: {requests: 100, window_s: 900}\n",
    )
    state = aioredis.Redis.from_url(redis_url)
    async with serving(
        nats_url, redis_url=redis_url, rate_limits_enabled=True, rate_limits_file=config
    ) as base:
        first = await chat(base, max_tokens=60)  # estimate: P + 60
        assert first.status == 200
        assert int(first.headers["x-ratelimit-remaining-tokens"]) < 40
        # The worker reports 3 + 2 tokens: the estimate is replaced (in the background).
        await tokens_charged(state, 5)
        second = await chat(base, max_tokens=60)  # 5 + P + 60 fits in P + 95 only thanks to the correction
        assert second.status == 200
        await tokens_charged(state, 10)
        third = await chat(base, max_tokens=90)  # 10 + P + 90 does not
        assert third.status == 429
        assert "tokens per 60 s" in third.error()["message"]
        assert third.headers["x-ratelimit-remaining-requests"] == "98"  # a refusal charges nothing
        too_large = await chat(base, max_tokens=500)
        assert too_large.status == 429
        assert "Request too large" in too_large.error()["message"]
        assert "Retry-After" not in too_large.headers  # waiting would not help
    await state.aclose()


async def test_a_users_override_and_the_tier_named_by_the_credential_win_over_the_plan(
    nats_url: str, redis_url: str, answering_worker: ScriptedWorker, tmp_path: Path
) -> None:
    config = limits_file(
        tmp_path,
        "default_tier: free\n"
        "tiers: {free: {requests: 1, tokens: null}, gold: {requests: 3, tokens: null}}\n"
        "plans: {free: free}\n"
        "users: {alice: {requests: 2}}\n"
        "per_ip: {requests: 100, window_s: 900}\n",
    )
    keys = f"{KEY}:alice:free,sk-bob:bob:free,sk-carol:carol:unknown-plan"
    async with serving(
        nats_url,
        redis_url=redis_url,
        rate_limits_enabled=True,
        rate_limits_file=config,
        gateway_api_keys=keys,
    ) as base:
        alice = [(await chat(base)).status for _ in range(3)]
        bob = [(await chat(base, headers={"Authorization": "Bearer sk-bob"})).status for _ in range(2)]
        carol = [(await chat(base, headers={"Authorization": "Bearer sk-carol"})).status for _ in range(2)]
    assert alice == [200, 200, 429]  # her override: 2
    assert bob == [200, 429]  # his plan's tier: 1
    assert carol == [200, 429]  # a plan the file does not map: the default tier


async def test_failed_credentials_are_limited_per_client_ip_and_never_throttle_a_valid_key(
    nats_url: str, redis_url: str, answering_worker: ScriptedWorker, tmp_path: Path
) -> None:
    config = limits_file(
        tmp_path,
        "default_tier: t\ntiers: {t: {requests: 100, tokens: null}}\nper_ip: {requests: 3, window_s: 900}\n",
    )
    async with serving(
        nats_url,
        redis_url=redis_url,
        rate_limits_enabled=True,
        rate_limits_file=config,
        trusted_proxies="127.0.0.0/8",
    ) as base:

        def through_proxy(ip: str, key: str = "sk-wrong") -> dict[str, str]:
            return {"Authorization": f"Bearer {key}", "X-Forwarded-For": f"{ip}, 127.0.0.1"}

        office = [(await chat(base, headers=through_proxy("203.0.113.5"))).status for _ in range(4)]
        assert office == [401, 401, 401, 429]
        refused = await chat(base, headers=through_proxy("203.0.113.5"))
        assert refused.error()["code"] == "rate_limit_exceeded"
        assert refused.headers["RateLimit-Limit"] == "3"
        assert (await chat(base, headers=through_proxy("203.0.113.6"))).status == 401  # another client
        assert (await chat(base, headers=through_proxy("203.0.113.5", KEY))).status == 200  # a paying user


async def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
    nats_url: str, redis_url: str, tmp_path: Path
) -> None:
    config = limits_file(
        tmp_path,
        "default_tier: t\ntiers: {t: {requests: 100, tokens: null}}\nper_ip: {requests: 2, window_s: 900}\n",
    )
    async with serving(
        nats_url,
        redis_url=redis_url,
        rate_limits_enabled=True,
        rate_limits_file=config,
        trusted_proxies="10.0.0.0/8",
    ) as base:
        forged = [f"198.51.100.{i}" for i in range(3)]  # a client inventing a new address each time
        statuses = [
            (await chat(base, headers={"Authorization": "Bearer sk-x", "X-Forwarded-For": ip})).status
            for ip in forged
        ]
    assert statuses == [401, 401, 429]  # all counted against the real peer, 127.0.0.1


@pytest.mark.parametrize(("mode", "while_down"), [("open", 200), ("closed", 503)])
async def test_redis_unreachable_follows_the_fail_mode_never_a_500_and_limits_resume_when_it_is_back(
    nats_url: str, answering_worker: ScriptedWorker, tmp_path: Path, mode: str, while_down: int
) -> None:
    config = limits_file(
        tmp_path,
        "default_tier: t\ntiers: {t: {requests: 2, tokens: null}}\nper_ip: {requests: 100, window_s: 900}\n",
    )
    with RedisServer() as server:
        async with serving(
            nats_url,
            redis_url=server.url,
            rate_limits_enabled=True,
            rate_limits_file=config,
            rate_limit_fail_mode=mode,
        ) as base:
            assert [(await chat(base)).status for _ in range(3)] == [200, 200, 429]
            server.kill()
            down = [await chat(base, stream=True) for _ in range(3)]
            assert [r.status for r in down] == [while_down] * 3
            if mode == "closed":
                assert down[0].error()["code"] == "rate_limit_unavailable"
                assert down[0].headers["Retry-After"] == "1"
            else:
                assert "RateLimit-Limit" not in down[0].headers  # admitted unchecked: nothing to report
            server.start()
            await asyncio.sleep(1.1)  # the gateway leaves a failed Redis alone for a second
            # A restarted in-memory Redis starts every window from empty; counting is exact again.
            assert [(await chat(base)).status for _ in range(3)] == [200, 200, 429]


class ClosedTransportConnection(aioredis.Connection):
    """What redis-py meets under uvloop when Redis dies between its connect and its first write: a
    RuntimeError from the closed transport, not an OSError (seen in CI, a 500 mid-outage)."""

    async def _send_packed_command(self, command: Any) -> None:
        raise RuntimeError(
            "unable to perform operation on <TCPTransport closed=True reading=False>; the handler is closed"
        )


@pytest.mark.parametrize("fail_mode", ["open", "closed"])
async def test_a_transport_closed_under_redis_py_is_an_outage_not_a_500(
    redis_url: str, fail_mode: str
) -> None:
    broken = aioredis.Redis(connection_pool=aioredis.ConnectionPool.from_url(redis_url))
    broken.connection_pool.connection_class = ClosedTransportConnection
    outage = RedisOutage(fail_mode)
    windows = SlidingWindows(broken)
    limits = [Window(key="rl:test:transport", limit=10, window_s=60)]
    try:
        if fail_mode == "open":
            assert await hit_or_fail_mode(windows, outage, "r1", limits) is None  # admitted unchecked
        else:
            with pytest.raises(ApiError) as refused:
                await hit_or_fail_mode(windows, outage, "r1", limits)
            assert refused.value.status == 503
        assert outage.down_since is not None  # counted as Redis being away: left alone for a second
    finally:
        await broken.aclose()
