"""Sign-in helpers for the end-to-end tests: session keys, a gateway with sign-in on a known port,
and a browser that signs in at the real OpenID provider (its development login form)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import nats
import pytest
import yarl
from aiohttp import web
from pydantic import SecretStr

from lobe.billing.service import BillingService
from lobe.devtools.ports import free_port
from lobe.devtools.servers.oidc import OidcProviderServer, through_provider
from lobe.devtools.suite import start_gateway
from lobe.gateway.auth.session_tokens import SessionClaims, TokenSigner
from lobe.gateway.auth.signing_keys import load_key_ring, new_signing_key
from lobe.shared.bus import flush
from lobe.shared.events.auth import AUTH_LOGIN_SUCCEEDED, LoginFailed, LoginSucceeded

from .conftest import API_KEY, billing_settings, start_worker

CLIENT_ID = "lobe-gateway"
CLIENT_SECRET = "oidc-client-secret-for-tests"


def key_set(*keys: dict[str, Any]) -> str:
    return json.dumps({"keys": list(keys)})


def signer_for(*keys: dict[str, Any], kid: str | None = None) -> TokenSigner:
    ring = load_key_ring(key_set(*keys), kid)
    assert ring is not None
    return TokenSigner(ring)


def claims(
    user: str = "usr_x", sid: str = "s1", ttl_s: int = 3600, role: str = "user", **extra: Any
) -> SessionClaims:
    now = int(time.time())
    return SessionClaims.model_validate(
        {"sub": user, "email": f"{user}@corp.example", "role": role, "plan": "free", "sid": sid,
         "iat": now - 10, "exp": now + ttl_s, **extra}
    )  # fmt: skip


@dataclass
class AuthGateway:
    runner: web.AppRunner
    url: str

    @property
    def callback(self) -> str:
        return f"{self.url}/auth/callback/oidc"


async def start_auth_gateway(
    nats_url: str, redis_url: str, keys: str, port: int | None = None, **overrides: Any
) -> AuthGateway:
    gateway = await start_gateway(
        nats_url,
        port=port,
        redis_url=SecretStr(redis_url),
        session_keys=SecretStr(keys),
        gateway_api_keys=SecretStr(f"{API_KEY}:alice:free"),
        worker_silence_s=1.0,
        **overrides,
    )
    return AuthGateway(gateway.runner, gateway.url)


def new_key(kid: str) -> dict[str, Any]:
    return new_signing_key(kid)


@dataclass
class SignedIn:
    status: int
    body: dict[str, Any]  # empty for a redirect
    cookie: Any  # the session cookie's Morsel, or None
    location: str | None = None  # where a redirect sends the browser


async def sign_in(
    gateway_url: str, issuer: str, email: str, provider: str = "oidc", return_to: str | None = None
) -> SignedIn:
    """A browser's whole sign-in; the provider's cookies in a jar, the gateway's checked by hand.
    `return_to` goes into the login URL as given (already percent-encoded, as an attacker's link)."""
    login = f"{gateway_url}/auth/login/{provider}" + (f"?return_to={return_to}" if return_to else "")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(yarl.URL(login, encoded=True), allow_redirects=False) as r:
            assert r.status == 302, await r.text()
            flow = r.cookies["lobe_sign_in"]
            location = r.headers["Location"]
        callback = await through_provider(http, location, issuer, email)
        assert callback.startswith(f"{gateway_url}/auth/callback/{provider}?"), callback
        async with (
            aiohttp.ClientSession() as browser,
            browser.get(
                callback, headers={"Cookie": f"lobe_sign_in={flow.value}"}, allow_redirects=False
            ) as r,
        ):
            body = await r.json() if r.content_type == "application/json" else {}
            return SignedIn(r.status, body, r.cookies.get("lobe_session"), r.headers.get("Location"))


@dataclass
class World:
    nats_url: str
    redis_url: str
    database: str
    provider: OidcProviderServer
    ports: list[int]
    facts: list[Any]

    def oidc(self, **overrides: Any) -> dict[str, Any]:
        return {
            "oidc_discovery_url": self.provider.discovery_url,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": CLIENT_SECRET,
            "allowed_email_domains": "corp.example",
            **overrides,
        }

    async def gateway(self, keys: str, index: int = 0, **overrides: Any) -> AuthGateway:
        return await start_auth_gateway(
            self.nats_url, self.redis_url, keys, self.ports[index], **{**self.oidc(), **overrides}
        )


@pytest.fixture(name="world")
async def world_fixture(
    nats_url: str,
    redis_url: str,
    billing_db: str,
    make_oidc_provider: Callable[[list[dict[str, Any]]], OidcProviderServer],
) -> AsyncIterator[World]:
    ports = [free_port(), free_port()]
    callbacks = [f"http://127.0.0.1:{port}/auth/callback/oidc" for port in ports]
    provider = make_oidc_provider(
        [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": callbacks}]
    )
    facts: list[Any] = []
    spy = await nats.connect(nats_url)

    async def record(msg: Any) -> None:
        model = LoginSucceeded if msg.subject == AUTH_LOGIN_SUCCEEDED else LoginFailed
        facts.append(model.decode(msg.data))

    await spy.subscribe("auth.login.*", cb=record)
    await flush(spy)
    async with BillingService(billing_settings(nats_url, billing_db, "t")):
        worker = await start_worker(nats_url)
        yield World(nats_url, redis_url, billing_db, provider, ports, facts)
        await worker.stop()
    await spy.close()
