"""Sessions that must end, as their holder would try to keep using them: a replica that starts
while Redis is away must not serve before it knows what was revoked. Real Redis (its own server
here, stopped and started), real NATS, the real gateway application on loopback."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from redis.asyncio import Redis

from lobe.devtools.servers.redis import RedisServer
from lobe.gateway.auth.sessions import SessionStore

from ..e2e.sign_in_support import claims, key_set, new_key, signer_for, start_auth_gateway

KEY = new_key("key-a")


async def _get(url: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as r:
        return r.status, await r.json()


async def test_a_replica_started_while_redis_is_away_is_not_ready_until_it_has_the_revoked_sessions(
    nats_url: str,
) -> None:
    redis = RedisServer()  # not started: the replica comes up while Redis is away
    try:
        gateway = await start_auth_gateway(nats_url, redis.url, key_set(KEY))
        status, body = await _get(f"{gateway.url}/api/ready")
        assert (status, body) == (
            503,
            {"status": "unavailable", "reasons": ["revoked sessions not loaded from Redis yet"]},
        )
        # Redis comes back, holding a session revoked while this replica was not listening.
        redis.start()
        revoked = claims(user="usr_gone", sid="s-revoked")
        client = Redis.from_url(redis.url)
        await SessionStore(client).ended(revoked.sub, revoked.sid, revoked.exp)
        await client.aclose()
        token = signer_for(KEY).sign_session(revoked)
        deadline = time.monotonic() + 10
        while (await _get(f"{gateway.url}/api/ready"))[0] != 200:
            assert time.monotonic() < deadline, "never became ready"
            await asyncio.sleep(0.05)
        # Ready means it knows: the revoked session is refused from the first request on.
        status, body = await _get(f"{gateway.url}/auth/session", token)
        assert (status, body["error"]["code"]) == (401, "invalid_session")
        await gateway.runner.cleanup()
    finally:
        redis.close()
