"""API-key lookups under pressure (issue 22): a burst of one cold key asks billing one question
(single flight), not one per request; while billing is silent a cached key is served until twice
its TTL and then refused with a 503 in OpenAI's format (a revocation a replica missed must end);
and a gateway that sees a private peer without TRUSTED_PROXIES says so, in its log and readiness."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from unittest import mock

import aiohttp
import nats
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from nats.aio.msg import Msg

from lobe.chat_worker.service import ChatWorker
from lobe.gateway.app import PROXY_CHECK
from lobe.shared.events.auth import AUTH_KEY_VERIFY, KeyVerified, KeyVerify

from ..e2e.conftest import start_gateway

pytestmark = pytest.mark.integration

KEY = "lobe-sk-" + secrets.token_urlsafe(32)[:43].ljust(43, "k")
TTL_S = 3.0


class Billing:
    """Billing's key lookup, answering slowly (so the burst overlaps it) or not at all."""

    def __init__(self) -> None:
        self.asked = 0
        self.answering = True

    async def verify(self, msg: Msg) -> None:
        question = KeyVerify.decode(msg.data)
        self.asked += 1
        if not self.answering:
            return
        await asyncio.sleep(0.1)
        known = question.key_sha256 == hashlib.sha256(KEY.encode()).hexdigest()
        answer = KeyVerified(
            request_id=question.request_id, valid=known, user_id="alice", api_key_id="k1", plan="free"
        )
        await msg.respond(answer.encode())


@contextlib.asynccontextmanager
async def billing(nats_url: str) -> AsyncIterator[Billing]:
    fake = Billing()
    nc = await nats.connect(nats_url)
    await nc.subscribe(AUTH_KEY_VERIFY, cb=fake.verify)
    await nc.flush()
    try:
        yield fake
    finally:
        await nc.close()


async def chat(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, str], dict[str, object]]:
    body = {"model": "mock", "messages": [{"role": "user", "content": "hi"}]}
    async with http.post(
        f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
    ) as r:
        return r.status, dict(r.headers), await r.json()


async def test_a_burst_of_one_cold_key_asks_billing_once(nats_url: str, worker: ChatWorker) -> None:
    async with billing(nats_url) as fake:
        runner, url = await start_gateway(nats_url, billing_enabled=True, budget_fail_mode="open")
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=128)) as http:
                replies = await asyncio.gather(*(chat(http, url) for _ in range(128)))
        finally:
            await runner.cleanup()
    assert [status for status, _, _ in replies] == [200] * 128
    assert fake.asked == 1


async def test_while_billing_is_silent_a_cached_key_is_served_until_twice_its_ttl_then_503(
    nats_url: str, worker: ChatWorker
) -> None:
    async with billing(nats_url) as fake, aiohttp.ClientSession() as http:
        runner, url = await start_gateway(
            nats_url,
            billing_enabled=True,
            budget_fail_mode="open",
            key_cache_ttl_s=TTL_S,
            billing_timeout_s=0.2,
        )
        try:
            vouched_at = time.monotonic()
            assert (await chat(http, url))[0] == 200
            fake.answering = False
            await asyncio.sleep(vouched_at + TTL_S * 1.2 - time.monotonic())
            assert (await chat(http, url))[0] == 200  # stale, within 2 x TTL: billing is only slow
            await asyncio.sleep(vouched_at + TTL_S * 2.2 - time.monotonic())
            status, headers, body = await chat(http, url)
        finally:
            await runner.cleanup()
    assert status == 503
    assert body["error"] == {
        "message": "API keys cannot be checked right now; retry shortly.",
        "type": "service_unavailable",
        "param": None,
        "code": "auth_unavailable",
    }
    assert headers["Retry-After"] == "1"


async def test_a_private_peer_without_trusted_proxies_warns_in_the_log_and_in_readiness(
    nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    runner, url = await start_gateway(nats_url)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/api/ready") as r:
                assert await r.json() == {"status": "ok"}  # loopback: a developer's own client
            # A request through a proxy on the compose network: the peer is the proxy's address.
            transport = mock.Mock()
            transport.get_extra_info.side_effect = lambda name, default=None: (
                ("172.18.0.5", 40000) if name == "peername" else default
            )
            proxied = make_mocked_request("GET", "/v1/models", transport=transport, app=runner.app)
            with caplog.at_level(logging.ERROR, logger="lobe.gateway.ratelimit.proxy_check"):
                for handler in runner.app.on_response_prepare:
                    await handler(proxied, web.Response())
            assert any(
                "172.18.0.5" in r.getMessage() and "TRUSTED_PROXIES" in r.getMessage() for r in caplog.records
            )
            async with http.get(f"{url}/api/ready") as r:
                ready = await r.json()
            assert r.status == 200
            assert ready["status"] == "ok"
            [warning] = ready["reasons"]
            assert "172.18.0.5" in warning
            assert "TRUSTED_PROXIES" in warning
    finally:
        await runner.cleanup()


async def test_with_trusted_proxies_set_a_private_peer_is_expected(nats_url: str) -> None:
    runner, url = await start_gateway(nats_url, trusted_proxies="172.16.0.0/12")
    try:
        runner.app[PROXY_CHECK].seen("172.18.0.5")
        async with aiohttp.ClientSession() as http, http.get(f"{url}/api/ready") as r:
            assert await r.json() == {"status": "ok"}
    finally:
        await runner.cleanup()
