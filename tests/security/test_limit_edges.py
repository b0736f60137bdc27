"""Every rate limit pinned at its edge, as a client meets it: N admitted, N + 1 refused (issue 22).

Gateways in this process on real NATS and Redis, a real chat worker on the mock model; a fake
billing only where a test counts the key lookups that reach it. Per window: requests per minute,
tokens (the estimate equal to the limit passes, one more does not), failed credentials per client
IP (counted before the lookup: a concurrent flood of unknown keys costs billing exactly N
questions) and per IPv6 /64, and the cap on a user's requests in flight (across replicas,
released however a request ends, healed by its lease when a gateway dies)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
import redis.asyncio as aioredis
from nats.aio.msg import Msg

from lobe.chat_worker.deployments import Deployment, ModelCatalog, RoutedModel
from lobe.chat_worker.service import ChatWorker
from lobe.gateway.ratelimit.limiter import token_estimate
from lobe.gateway.request_body import EdgeRequest
from lobe.shared.events.auth import AUTH_KEY_VERIFY, KeyVerified, KeyVerify

from ..e2e.conftest import start_gateway, start_worker
from .stack import Gateway, gateway_processes

pytestmark = pytest.mark.integration

KEY = "sk-edge-alice"
HOLD_S = 1.0  # the `hold` model's delay before each chunk: an answer of max_tokens=k takes ~k s
MESSAGES = [{"role": "user", "content": "hi"}]


def limits(tmp_path: Path, tier: str, per_ip: str = "{requests: 100, window_s: 900}") -> Path:
    path = tmp_path / f"limits-{secrets.token_hex(4)}.yaml"
    path.write_text(f"default_tier: t\ntiers: {{t: {tier}}}\nper_ip: {per_ip}\n")
    return path


@contextlib.asynccontextmanager
async def gateways(
    nats_url: str, redis_url: str, rate_limits_file: Path, count: int = 1, **overrides: Any
) -> AsyncIterator[list[str]]:
    runners, urls = [], []
    try:
        for _ in range(count):
            runner, url = await start_gateway(
                nats_url,
                redis_url=redis_url,
                rate_limits_enabled=True,
                rate_limits_file=rate_limits_file,
                gateway_api_keys=f"{KEY}:alice:free",
                **overrides,
            )
            runners.append(runner)
            urls.append(url)
        yield urls
    finally:
        for runner in runners:
            await runner.cleanup()


@pytest.fixture
async def holding_worker(nats_url: str) -> AsyncIterator[ChatWorker]:
    models = ModelCatalog(
        models=[
            RoutedModel(name="mock", deployments=[Deployment(name="mock", provider="mock")]),
            RoutedModel(
                name="hold", deployments=[Deployment(name="hold", provider="mock", chunk_delay_s=HOLD_S)]
            ),
        ]
    )
    running = await start_worker(nats_url, models)
    yield running
    await running.stop()


async def post(
    http: aiohttp.ClientSession, url: str, key: str = KEY, headers: dict[str, str] | None = None, **body: Any
) -> tuple[int, dict[str, str], dict[str, Any]]:
    payload = {"model": "mock", "messages": MESSAGES, **body}
    auth = {"Authorization": f"Bearer {key}", **(headers or {})}
    async with http.post(f"{url}/v1/chat/completions", json=payload, headers=auth) as r:
        text = await r.text()
        parsed = json.loads(text) if r.content_type == "application/json" else {}
        return r.status, dict(r.headers), parsed


async def until(condition: Callable[[], Awaitable[bool]], limit_s: float = 20.0) -> float:
    """Wait for `condition`; the seconds it took."""
    began = time.monotonic()
    while not await condition():
        assert time.monotonic() - began < limit_s, "condition never held"
        await asyncio.sleep(0.05)
    return time.monotonic() - began


# -- requests and tokens per window ---------------------------------------------------------------
async def test_requests_per_window_admit_exactly_n_concurrently_and_refuse_n_plus_1(
    nats_url: str, redis_url: str, holding_worker: ChatWorker, tmp_path: Path
) -> None:
    config = limits(tmp_path, "{requests: 5, tokens: null}")
    async with gateways(nats_url, redis_url, config, 2) as urls, aiohttp.ClientSession() as http:
        replies = await asyncio.gather(*(post(http, urls[i % 2]) for i in range(6)))
        assert sorted(status for status, _, _ in replies) == [200] * 5 + [429]
        status, headers, body = await post(http, urls[0])
        assert status == 429
        assert body["error"]["code"] == "rate_limit_exceeded"
        assert body["error"]["type"] == "rate_limit_error"
        assert int(headers["Retry-After"]) in range(1, 61)
        assert headers["RateLimit-Remaining"] == "0"


LARGE = [{"role": "user", "content": "word " * 5_000}]  # past PARSE_FIRST_BYTES: limited before the parse


@pytest.mark.parametrize("messages", [MESSAGES, LARGE], ids=["small body", "large body"])
@pytest.mark.parametrize(("room", "status"), [(0, 200), (-1, 429)])
async def test_a_token_window_admits_an_estimate_equal_to_its_limit_and_not_one_more(
    nats_url: str,
    redis_url: str,
    holding_worker: ChatWorker,
    tmp_path: Path,
    room: int,
    status: int,
    messages: list[dict[str, str]],
) -> None:
    request = {"model": "mock", "messages": messages, "max_tokens": 50}
    estimate = token_estimate(EdgeRequest.model_validate(request))
    config = limits(tmp_path, f"{{requests: 100, tokens: {estimate + room}}}")
    async with gateways(nats_url, redis_url, config) as [url], aiohttp.ClientSession() as http:
        got, headers, body = await post(http, url, messages=messages, max_tokens=50)
    assert got == status
    if status == 429:
        assert body["error"]["code"] == "rate_limit_exceeded"
        assert "Request too large" in body["error"]["message"]
        assert headers["x-ratelimit-remaining-requests"] == "100"  # refused for tokens: no request spent


async def test_a_token_window_counts_the_prompt_a_tool_call_argument_carries(
    nats_url: str, redis_url: str, holding_worker: ChatWorker, tmp_path: Path
) -> None:
    # The prompt's bulk in an assistant tool call's arguments (~50,000 tokens), its text two
    # words: the window of 20,000 tokens a minute must see the arguments, as the budget hold does.
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "x" * 200_000}}
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
    ]
    config = limits(tmp_path, "{requests: 100, tokens: 20000}")
    async with gateways(nats_url, redis_url, config) as [url], aiohttp.ClientSession() as http:
        got, _, body = await post(http, url, messages=messages, max_tokens=50)
        assert got == 429, body
        assert "Request too large" in body["error"]["message"]
        assert (await post(http, url, max_tokens=50))[0] == 200  # a small prompt still passes


async def test_a_caller_over_their_limit_is_refused_before_a_large_body_is_parsed(
    nats_url: str, redis_url: str, holding_worker: ChatWorker, tmp_path: Path
) -> None:
    config = limits(tmp_path, "{requests: 2, tokens: 1000000, concurrent: 5}")
    malformed = b'{"model": "mock", "messages": [' + b"9" * 100_000  # not JSON: a parse says 400
    auth = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    async with gateways(nats_url, redis_url, config) as [url], aiohttp.ClientSession() as http:

        async def send_malformed() -> int:
            async with http.post(f"{url}/v1/chat/completions", data=malformed, headers=auth) as r:
                return r.status

        assert await send_malformed() == 400  # within the limit: parsed, refused, and counted
        await until(lambda: _equals(in_flight(redis_url), 0))  # its place given back
        assert (await post(http, url))[0] == 200
        assert await send_malformed() == 429  # over it: refused before a byte of it was parsed


# -- failed credentials per client IP ---------------------------------------------------------------
@contextlib.asynccontextmanager
async def counting_billing(nats_url: str) -> AsyncIterator[list[str]]:
    """A billing that knows no key, and notes every key digest it was asked about."""
    asked: list[str] = []
    nc = await nats.connect(nats_url)

    async def verify(msg: Msg) -> None:
        asked.append(KeyVerify.decode(msg.data).key_sha256)
        await msg.respond(KeyVerified(request_id="r", valid=False).encode())

    await nc.subscribe(AUTH_KEY_VERIFY, cb=verify)
    await nc.flush()
    try:
        yield asked
    finally:
        await nc.close()


def unknown_key() -> str:
    return "lobe-sk-" + secrets.token_urlsafe(32)[:43].ljust(43, "x")


async def test_a_concurrent_flood_of_unknown_keys_from_one_ip_costs_billing_exactly_n_lookups(
    nats_url: str, redis_url: str, tmp_path: Path
) -> None:
    config = limits(tmp_path, "{requests: 100, tokens: null}", per_ip="{requests: 3, window_s: 900}")
    async with (
        counting_billing(nats_url) as asked,
        gateways(nats_url, redis_url, config, billing_enabled=True) as [url],
        aiohttp.ClientSession() as http,
    ):
        replies = await asyncio.gather(*(post(http, url, key=unknown_key()) for _ in range(8)))
        assert sorted(status for status, _, _ in replies) == [401] * 3 + [429] * 5
        assert len(asked) == 3  # each lookup was counted before it was asked
        status, _, body = await post(http, url, key=unknown_key())
        assert status == 429
        assert body["error"]["code"] == "rate_limit_exceeded"
        assert len(asked) == 3


async def test_failed_credentials_per_ip_admit_exactly_n_and_a_valid_key_is_never_counted(
    nats_url: str, redis_url: str, holding_worker: ChatWorker, tmp_path: Path
) -> None:
    config = limits(tmp_path, "{requests: 100, tokens: null}", per_ip="{requests: 3, window_s: 900}")
    async with gateways(nats_url, redis_url, config) as [url], aiohttp.ClientSession() as http:
        for _ in range(10):
            assert (await post(http, url))[0] == 200
        statuses = [(await post(http, url, key="sk-wrong"))[0] for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        assert (await post(http, url))[0] == 200  # a paying user behind the same address


async def test_ipv6_clients_share_one_failed_auth_bucket_per_64(
    nats_url: str, redis_url: str, tmp_path: Path
) -> None:
    config = limits(tmp_path, "{requests: 100, tokens: null}", per_ip="{requests: 2, window_s: 900}")
    async with (
        gateways(nats_url, redis_url, config, trusted_proxies="127.0.0.0/8") as [url],
        aiohttp.ClientSession() as http,
    ):

        async def from_ip(ip: str) -> int:
            return (await post(http, url, key="sk-wrong", headers={"X-Forwarded-For": ip}))[0]

        # One host rotating through its /64 (privacy addresses) is one client.
        assert [await from_ip(f"2001:db8:1:2::{n:x}") for n in range(1, 4)] == [401, 401, 429]
        assert await from_ip("2001:db8:1:2:ffff:ffff:ffff:ffff") == 429
        assert await from_ip("2001:db8:1:3::1") == 401  # the next /64 is someone else


# -- requests in flight -------------------------------------------------------------------------------
async def in_flight(redis_url: str, user: str = "alice") -> int:
    client = aioredis.Redis.from_url(redis_url)
    try:
        return int(await client.zcard(f"lobe:rl:{{u:{user}}}:in_flight"))
    finally:
        await client.aclose()


async def test_the_cap_on_requests_in_flight_admits_n_across_replicas_refuses_n_plus_1_and_frees_on_end(
    nats_url: str, redis_url: str, holding_worker: ChatWorker, tmp_path: Path
) -> None:
    config = limits(tmp_path, "{requests: 100, tokens: null, concurrent: 3}")
    async with gateways(nats_url, redis_url, config, 2) as urls, aiohttp.ClientSession() as http:
        held = [
            asyncio.create_task(post(http, urls[i % 2], model="hold", max_tokens=6, stream=True))
            for i in range(3)
        ]
        await until(lambda: _equals(in_flight(redis_url), 3))
        status, headers, body = await post(http, urls[1])
        assert status == 429
        assert body["error"]["code"] == "rate_limit_exceeded"
        assert "Too many requests in flight" in body["error"]["message"]
        assert "allows 3 at once" in body["error"]["message"]
        assert headers["Retry-After"] == "1"
        held[0].cancel()  # a client that leaves gives its place back
        with contextlib.suppress(asyncio.CancelledError):
            await held[0]
        await until(lambda: _equals(in_flight(redis_url), 2))
        assert (await post(http, urls[0]))[0] == 200
        assert [(await task)[0] for task in held[1:]] == [200, 200]  # answers that end give theirs back
        await until(lambda: _equals(in_flight(redis_url), 0))
        # A refusal for another reason (a bad body) gives its place back too.
        assert (await post(http, urls[0], messages="not a list"))[0] == 400
        await until(lambda: _equals(in_flight(redis_url), 0))


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


def gateway_process(
    nats_url: str, redis_url: str, config: Path, lease_s: int
) -> contextlib.AbstractAsyncContextManager[list[Gateway]]:
    env = {
        "NATS_URL": nats_url,
        "REDIS_URL": redis_url,
        "GATEWAY_API_KEYS": f"{KEY}:alice:free",
        "BILLING_ENABLED": "false",
        "CACHE_ENABLED": "false",
        "RATE_LIMITS_FILE": str(config),
        "CONCURRENCY_LEASE_S": str(lease_s),
        "WORKER_SILENCE_S": "3",
    }
    return gateway_processes(1, env)


LEASE_S = 3


async def test_a_long_answer_keeps_its_place_past_the_lease_and_a_dead_gateways_places_free_themselves(
    nats_url: str, redis_url: str, holding_worker: ChatWorker, tmp_path: Path
) -> None:
    config = limits(tmp_path, "{requests: 100, tokens: null, concurrent: 2}")
    async with (
        gateway_process(nats_url, redis_url, config, LEASE_S) as [doomed],
        gateways(nats_url, redis_url, config, concurrency_lease_s=LEASE_S) as [survivor],
        aiohttp.ClientSession() as http,
    ):
        held = [
            asyncio.create_task(post(http, doomed.url, model="hold", max_tokens=30, stream=True))
            for _ in range(2)
        ]
        await until(lambda: _equals(in_flight(redis_url), 2))
        await asyncio.sleep(LEASE_S * 1.5)  # past one lease: renewed, the places are still taken
        assert (await post(http, survivor))[0] == 429
        doomed.proc.send_signal(signal.SIGKILL)  # dies holding both places, renewing nothing
        await doomed.proc.wait()
        for task in held:
            with contextlib.suppress(aiohttp.ClientError):
                await task
        assert (await post(http, survivor))[0] == 429  # not freed by anyone...

        async def admitted() -> bool:
            return (await post(http, survivor))[0] == 200

        took = await until(admitted)  # ...until their leases run out
        assert took <= LEASE_S + 4
