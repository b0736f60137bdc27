"""Sessions that must end, as their holder would try to keep using them: a replica that starts
while Redis is away must not serve before it knows what was revoked. Real Redis (its own server
here, stopped and started), real NATS, the real gateway application on loopback; and a session
whose role or plan billing has since changed (a real OpenID provider signs in, billing in-process)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import asyncpg
from redis.asyncio import Redis

from lobe.billing.admin import admin_session
from lobe.billing.plans import Override
from lobe.devtools.servers.redis import RedisServer
from lobe.gateway.auth.sessions import SessionStore

from ..e2e.sign_in_support import (
    World,
    claims,
    key_set,
    new_key,
    sign_in,
    signer_for,
    start_auth_gateway,
    world_fixture,  # noqa: F401 (the fixture `world`)
)

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


# -- a role or plan change ends the sessions that claim the old one -------------------------------------
async def _refused_within(url: str, token: str, within_s: float) -> tuple[int, float]:
    """(the status `url` first answers `token` with other than 200, seconds until then)."""
    began = time.monotonic()
    while True:
        status, _ = await _get(url, token)
        if status != 200:
            return status, time.monotonic() - began
        assert time.monotonic() - began < within_s, "still accepted"
        await asyncio.sleep(0.01)


async def test_a_demoted_admins_session_is_refused_on_admin_routes_within_a_second(world: World) -> None:
    conn = await asyncpg.connect(world.database)
    await conn.execute("INSERT INTO users (id, email, role) VALUES ('root', 'root@corp.example', 'admin')")
    await conn.close()
    one = await world.gateway(key_set(KEY), 0)
    two = await world.gateway(key_set(KEY), 1)
    root = (await sign_in(one.url, world.provider.url, "root@corp.example")).body
    token = root["access_token"]
    admin_route = "/v1/admin/users/root/sessions"
    for gateway in (one, two):
        assert (await _get(gateway.url + admin_route, token))[0] == 200
    async with admin_session(world.database, world.nats_url) as admin:
        await admin.set_role("root", "user")
    for gateway in (one, two):
        status, after_s = await _refused_within(gateway.url + admin_route, token, 1.0)
        print(f"demoted -> refused on {gateway.url}: {after_s * 1000:.0f} ms")
        assert status == 401  # the session itself has ended, not only its admin rights
    again = await sign_in(one.url, world.provider.url, "root@corp.example")
    assert again.body["user"]["role"] == "user"
    status, body = await _get(two.url + admin_route, again.body["access_token"])
    assert (status, body["error"]["code"]) == (403, "admin_required")
    for gateway in (one, two):
        await gateway.runner.cleanup()


async def test_a_plan_change_ends_the_session_and_the_next_one_is_on_the_new_plan(world: World) -> None:
    gateway = await world.gateway(key_set(KEY))
    ann = (await sign_in(gateway.url, world.provider.url, "ann@corp.example")).body
    assert ann["user"]["plan"] == "free"
    token = ann["access_token"]
    assert (await _get(f"{gateway.url}/v1/models", token))[0] == 200
    async with admin_session(world.database, world.nats_url) as admin:
        await admin.set_plan(ann["user"]["id"], "premium")
    # Polled where no rate limit answers 429 first (the free plan allows a few requests a second).
    status, after_s = await _refused_within(f"{gateway.url}/auth/session", token, 1.0)
    print(f"plan changed -> old session refused: {after_s * 1000:.0f} ms")
    assert status == 401
    again = (await sign_in(gateway.url, world.provider.url, "ann@corp.example")).body
    assert (again["user"]["id"], again["user"]["plan"]) == (ann["user"]["id"], "premium")
    await gateway.runner.cleanup()


async def test_a_rate_tier_override_ends_the_session_and_the_next_one_carries_the_new_tier(
    world: World,
) -> None:
    """`lobe admin set-limits --rate-tier` changes no plan: the session ends all the same."""
    gateway = await world.gateway(key_set(KEY))
    bob = (await sign_in(gateway.url, world.provider.url, "bob@corp.example")).body
    assert bob["user"]["rate_tier"] == "free"
    token = bob["access_token"]
    async with admin_session(world.database, world.nats_url) as admin:
        await admin.set_limits(bob["user"]["id"], Override(rate_tier="enterprise"))
    status, _ = await _refused_within(f"{gateway.url}/auth/session", token, 1.0)
    assert status == 401
    again = (await sign_in(gateway.url, world.provider.url, "bob@corp.example")).body
    assert (again["user"]["plan"], again["user"]["rate_tier"]) == ("free", "enterprise")
    await gateway.runner.cleanup()
