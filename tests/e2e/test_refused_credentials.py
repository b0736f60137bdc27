"""Every bad credential, API key or session JWT, gets 401 in OpenAI's error format, and nothing of
it reaches the chat path: a sniffer on `>` sees no chat request, budget reservation or usage
event. Malformed keys and bad JWTs cause no bus traffic at all; a well-formed key nobody issued
costs one lookup at billing."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import nats
import openai
import pytest
from nats.aio.msg import Msg
from redis.asyncio import Redis

from lobe.gateway.auth.assembly import AUTH
from lobe.gateway.auth.sessions import SessionStore
from lobe.shared.bus import flush
from lobe.shared.events.auth import AUTH_KEY_VERIFY

from .conftest import start_worker
from .sign_in_support import AuthGateway, claims, key_set, new_key, signer_for, start_auth_gateway

KEY = new_key("live")
OTHER = new_key("other")
UNPUBLISHED = new_key("live")  # same kid, another key: a forged signature
NATS_OWN = ("$JS.", "_INBOX.")
MESSAGES = [{"role": "user", "content": "let me in"}]


def _tamper(token: str) -> str:
    head, body, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=="))
    payload["role"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{signature}"


@pytest.fixture
async def auth_gateway(nats_url: str, redis_url: str) -> AsyncIterator[AuthGateway]:
    worker = await start_worker(nats_url)
    gw = await start_auth_gateway(
        nats_url, redis_url, key_set(KEY), billing_enabled=True, billing_timeout_s=0.2
    )
    yield gw
    await gw.runner.cleanup()
    await worker.stop()


async def test_bad_credentials_get_401_and_nothing_of_theirs_reaches_the_chat_path(
    auth_gateway: AuthGateway, nats_url: str
) -> None:
    live = signer_for(KEY)
    revoked_claims = claims(sid="revoked-1")
    revoked = live.sign_session(revoked_claims)
    # Revoked the way the gateway does it (Redis, then the fact); the sniffer starts after.
    sessions = auth_gateway.runner.app[AUTH].sessions
    assert sessions is not None
    await sessions.end("usr_x", "revoked-1", revoked_claims.exp, "revoked")
    bad = {
        "malformed key": "definitely-not-a-key",
        "malformed JWT": "eyJhbGciOiJFUzI1NiJ9.not-base64!.x",
        "expired JWT": live.sign_session(claims(ttl_s=-5)),
        "wrongly signed JWT": signer_for(UNPUBLISHED).sign_session(claims()),
        "tampered JWT": _tamper(live.sign_session(claims())),
        "unknown kid": signer_for(OTHER).sign_session(claims()),
        "revoked JWT": revoked,
    }
    seen: list[Msg] = []
    spy = await nats.connect(nats_url)

    async def record(msg: Msg) -> None:
        if not msg.subject.startswith(NATS_OWN):
            seen.append(msg)

    await spy.subscribe(">", cb=record)
    await flush(spy)
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{auth_gateway.url}/v1/chat/completions", json={"model": "mock", "messages": MESSAGES}
        ) as r:
            assert r.status == 401
            assert (await r.json())["error"]["code"] == "missing_api_key"
        for name, token in bad.items():
            client = openai.AsyncOpenAI(base_url=f"{auth_gateway.url}/v1", api_key=token, max_retries=0)
            with pytest.raises(openai.AuthenticationError) as refused:
                await client.chat.completions.create(model="mock", messages=MESSAGES)  # type: ignore[arg-type]
            body = refused.value.body
            assert isinstance(body, dict), name
            assert body["type"] == "authentication_error", (name, body)
            # As a cookie too: the same refusal.
            async with http.get(
                f"{auth_gateway.url}/v1/models", headers={"Cookie": f"lobe_session={token}"}
            ) as r:
                assert r.status == 401, name
        await flush(spy)
        await asyncio.sleep(0.2)
        assert [m.subject for m in seen] == [], "bad credentials caused bus traffic"

        # A well-formed key nobody issued: one question to billing (no billing runs: 503, retry).
        unknown = "lobe-sk-" + "A" * 43
        async with http.get(
            f"{auth_gateway.url}/v1/models", headers={"Authorization": f"Bearer {unknown}"}
        ) as r:
            assert r.status in (401, 503)
        await flush(spy)
        await asyncio.sleep(0.2)
        assert [m.subject for m in seen] == [AUTH_KEY_VERIFY]

        # A user's session on an admin endpoint: 403, also without traffic.
        user = live.sign_session(claims(sid="user-1"))
        async with http.delete(
            f"{auth_gateway.url}/v1/admin/users/usr_x/sessions", headers={"Authorization": f"Bearer {user}"}
        ) as r:
            assert r.status == 403
            assert (await r.json())["error"]["type"] == "permission_error"
    await flush(spy)
    chat_path = [
        m.subject for m in seen if m.subject.split(".")[0] in ("chat", "usage") or "budget" in m.subject
    ]
    assert chat_path == []
    await spy.close()


async def test_the_active_sessions_figure_is_exact_across_replicas(redis_url: str) -> None:
    """Two replicas' stores on one Redis count each live session once; ended and expired ones not."""
    one, two = Redis.from_url(redis_url), Redis.from_url(redis_url)
    a, b = SessionStore(one), SessionStore(two)
    now = int(time.time())
    await a.started("u1", "s1", now + 600)
    await b.started("u2", "s2", now + 600)
    await b.started("u2", "s3", now - 1)  # already expired
    assert await a.active_count() == await b.active_count() == 2
    await b.ended("u1", "s1", now + 600)
    assert await a.active_count() == 1
    assert await a.revoked() == {"s1": now + 600}
    await one.aclose()
    await two.aclose()
