"""Sign-in end to end against a real OpenID provider on loopback (panva's certified oidc-provider
under node: it requires PKCE and checks the nonce), with billing creating the user over the bus,
Redis holding the sessions, and the official `openai` SDK using the session JWT."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import asyncpg
import openai
from joserfc import jwt

from lobe.shared.events.auth import LoginFailed, LoginSucceeded

from .sign_in_support import (
    World,
    claims,
    key_set,
    new_key,
    sign_in,
    signer_for,
    start_auth_gateway,
    world_fixture,  # noqa: F401 (the fixture `world`)
)

MESSAGES = [{"role": "user", "content": "Hello from a session"}]
KEY_A, KEY_B = new_key("key-a"), new_key("key-b")


async def test_oidc_code_flow_with_pkce_signs_in_and_the_openai_sdk_uses_the_session(world: World) -> None:
    gateway = await world.gateway(key_set(KEY_A))
    signed = await sign_in(gateway.url, world.provider.url, "ann@corp.example")
    assert signed.status == 200, signed.body
    token = signed.body["access_token"]
    user = signed.body["user"]
    assert (user["email"], user["role"], user["plan"], user["rate_tier"]) == (
        "ann@corp.example",
        "user",
        "free",
        "free",
    )
    assert jwt.decode(token, signer_for(KEY_A).ring.keys).header["kid"] == "key-a"
    cookie = signed.cookie
    assert cookie.value == token
    assert (cookie["httponly"], cookie["secure"], cookie["samesite"], cookie["path"]) == (
        True,
        True,
        "Lax",
        "/",
    )

    client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=token, max_retries=0)
    answer = await client.chat.completions.create(model="mock", messages=MESSAGES)  # type: ignore[arg-type]
    assert answer.choices[0].message.content
    # The same session as the browser holds it: the cookie alone.
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{gateway.url}/auth/session", headers={"Cookie": f"lobe_session={token}"}) as r,
    ):
        assert r.status == 200
        assert (await r.json())["id"] == user["id"]

    # Billing created the user on the default plan, once; a second sign-in finds it.
    again = await sign_in(gateway.url, world.provider.url, "ann@corp.example")
    assert again.body["user"]["id"] == user["id"]
    conn = await asyncpg.connect(world.database)
    assert await conn.fetchval("SELECT count(*) FROM users WHERE email = 'ann@corp.example'") == 1
    await conn.close()
    succeeded = [f for f in world.facts if isinstance(f, LoginSucceeded)]
    assert [f.new_user for f in succeeded] == [True, False]
    await gateway.runner.cleanup()


async def test_an_email_domain_not_on_the_allow_list_is_refused_and_no_user_is_created(world: World) -> None:
    gateway = await world.gateway(key_set(KEY_A))
    signed = await sign_in(gateway.url, world.provider.url, "eve@elsewhere.example")
    assert signed.status == 403
    assert signed.body["error"]["code"] == "domain_not_allowed"
    assert signed.cookie is None
    conn = await asyncpg.connect(world.database)
    assert await conn.fetchval("SELECT count(*) FROM users") == 0
    await conn.close()
    await asyncio.sleep(0.1)
    [failed] = [f for f in world.facts if isinstance(f, LoginFailed)]
    assert (failed.reason, failed.email_domain) == ("domain_not_allowed", "elsewhere.example")
    await gateway.runner.cleanup()


async def test_a_rotated_signing_key_keeps_old_sessions_valid_until_they_expire(world: World) -> None:
    before = await world.gateway(key_set(KEY_A), 0)
    old = (await sign_in(before.url, world.provider.url, "ann@corp.example")).body["access_token"]
    await before.runner.cleanup()
    # Rotation: key B added and made the signer, key A kept to verify what it signed.
    after = await world.gateway(key_set(KEY_A, KEY_B), 1, session_signing_kid="key-b")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{after.url}/.well-known/jwks.json") as r:
            published = await r.json()
        assert sorted(k["kid"] for k in published["keys"]) == ["key-a", "key-b"]
        assert all("d" not in k for k in published["keys"])  # public halves only
        client = openai.AsyncOpenAI(base_url=f"{after.url}/v1", api_key=old, max_retries=0)
        assert (await client.chat.completions.create(model="mock", messages=MESSAGES)).choices  # type: ignore[arg-type]
        new = (await sign_in(after.url, world.provider.url, "ann@corp.example")).body["access_token"]
        assert jwt.decode(new, signer_for(KEY_B).ring.keys).header["kid"] == "key-b"
        # A session key A signed that has expired is refused like any expired session.
        expired = signer_for(KEY_A).sign_session(claims(ttl_s=-1))
        async with http.get(f"{after.url}/v1/models", headers={"Authorization": f"Bearer {expired}"}) as r:
            assert r.status == 401
            assert (await r.json())["error"]["code"] == "invalid_session"
    await after.runner.cleanup()


async def _refused_within(url: str, token: str, within_s: float) -> float:
    """Seconds until `url` refuses `token` with 401 (polling), failing past `within_s`."""
    began = time.monotonic()
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
                if r.status == 401:
                    return time.monotonic() - began
                assert r.status == 200
            assert time.monotonic() - began < within_s, "still accepted"
            await asyncio.sleep(0.01)


async def test_sign_out_and_an_admins_revoke_take_effect_on_every_replica_within_a_second(
    world: World,
) -> None:
    conn = await asyncpg.connect(world.database)
    await conn.execute("INSERT INTO users (id, email, role) VALUES ('root', 'root@corp.example', 'admin')")
    await conn.close()
    one = await world.gateway(key_set(KEY_A), 0)
    two = await world.gateway(key_set(KEY_A), 1)
    ann = (await sign_in(one.url, world.provider.url, "ann@corp.example")).body
    root = (await sign_in(one.url, world.provider.url, "root@corp.example")).body
    assert root["user"]["role"] == "admin"
    bearer = {"Authorization": f"Bearer {ann['access_token']}"}
    admin = {"Authorization": f"Bearer {root['access_token']}"}
    sessions_of_ann = f"{two.url}/v1/admin/users/{ann['user']['id']}/sessions"
    async with aiohttp.ClientSession() as http:
        # A user's session on an admin endpoint: 403.
        async with http.get(sessions_of_ann, headers=bearer) as r:
            assert r.status == 403
            assert (await r.json())["error"]["type"] == "permission_error"
        async with http.get(sessions_of_ann, headers=admin) as r:
            assert [s["id"] for s in (await r.json())["data"]] == [_sid(ann["access_token"])]
        # The admin revokes Ann's sessions on replica two; replica one refuses hers at once.
        async with http.delete(sessions_of_ann, headers=admin) as r:
            assert r.status == 200, await r.text()
        assert await _refused_within(f"{one.url}/auth/session", ann["access_token"], 1.0) < 1.0
        # The admin signs out on replica one; replica two refuses that session at once.
        async with http.post(f"{one.url}/auth/logout", headers=admin) as r:
            assert r.status == 200
            assert r.cookies["lobe_session"].value == ""
        assert await _refused_within(f"{two.url}/auth/session", root["access_token"], 1.0) < 1.0
    # A replica started later learns both from Redis.
    three = await start_auth_gateway(world.nats_url, world.redis_url, key_set(KEY_A), **world.oidc())
    for token in (ann["access_token"], root["access_token"]):
        assert await _refused_within(f"{three.url}/auth/session", token, 0.01) < 0.01 + 0.5
    for gateway in (one, two, three):
        await gateway.runner.cleanup()


def _sid(token: str) -> str:
    return str(jwt.decode(token, signer_for(KEY_A).ring.keys).claims["sid"])
