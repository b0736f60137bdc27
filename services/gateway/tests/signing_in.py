"""Sign-in against a real OpenID provider (devtools' oidc-provider under node), with billing's
`auth.user.resolve` answered by a small responder on the real bus: what the sign-in tests share.

The gateway says it is `http(s)://gateway.test` (GATEWAY_PUBLIC_URL): the provider sends the
browser back there, and the test brings that callback to the gateway's real address, as a browser
behind the operator's proxy would. Only the URL's scheme decides the cookie's name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http.cookies import Morsel, SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from lobe.devtools.servers.oidc import OidcProviderServer, through_provider
from lobe.gateway.auth.signing_keys import new_signing_key
from lobe.shared.bus import flush
from lobe.shared.events.auth import AUTH_USER_RESOLVE, UserResolve, UserResolved

from .support import serving

CLIENT_ID = "lobe-gateway"
CLIENT_SECRET = "oidc-client-secret-for-tests"
PUBLIC_URLS = ("http://gateway.test", "https://gateway.test")


def callbacks(provider: str = "oidc") -> list[str]:
    """The callback URLs a client at the provider registers for the gateway's provider `provider`."""
    return [f"{url}/auth/callback/{provider}" for url in PUBLIC_URLS]


CALLBACKS = callbacks()
SIGNING_KEY = new_signing_key("k1")
SESSION_KEYS = json.dumps({"keys": [SIGNING_KEY]})


@dataclass
class FakeBilling:
    """Answers `auth.user.resolve` as billing does: one user per e-mail, created on first sight."""

    nc: NATS
    asked: list[UserResolve] = field(default_factory=list)

    async def start(self) -> FakeBilling:
        await self.nc.subscribe(AUTH_USER_RESOLVE, cb=self._resolve)
        await flush(self.nc)
        return self

    @staticmethod
    def user_id(email: str) -> str:
        return "usr_" + hashlib.sha256(email.encode()).hexdigest()[:12]

    async def _resolve(self, msg: Msg) -> None:
        question = UserResolve.decode(msg.data)
        created = all(q.email != question.email for q in self.asked)
        self.asked.append(question)
        user_id = self.user_id(question.email)
        reply = UserResolved(
            request_id=question.request_id, user_id=user_id, role="user", plan="pro", created=created
        )
        await msg.respond(reply.encode())


@contextlib.asynccontextmanager
async def sign_in_gateway(
    nats_url: str,
    redis_url: str,
    provider: OidcProviderServer,
    public_url: str = PUBLIC_URLS[0],
    **overrides: Any,
) -> AsyncIterator[str]:
    """The real gateway with OpenID sign-in configured; its base URL."""
    settings: dict[str, Any] = {
        "redis_url": redis_url,
        "session_keys": SESSION_KEYS,
        "oidc_discovery_url": provider.discovery_url,
        "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": CLIENT_SECRET,
        "gateway_public_url": public_url,
        **overrides,
    }
    async with serving(nats_url, **settings) as url:
        yield url


@dataclass
class Flow:
    """A sign-in a browser began: where the gateway sent it, and the flow cookie it set."""

    location: str
    cookie: Morsel[str]

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.location).query).items()}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    cookies: SimpleCookie
    body: dict[str, Any]


async def begin(gateway: str, name: str = "oidc") -> Flow:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{gateway}/auth/login/{name}", allow_redirects=False) as r,
    ):
        assert r.status == 302, await r.text()
        return Flow(r.headers["Location"], r.cookies["lobe_sign_in"])


async def at_provider(flow: Flow, provider: OidcProviderServer, email: str, name: str = "oidc") -> str:
    """The person signs in as `email` at the provider; the callback's path and query it sends back."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        callback = await through_provider(http, flow.location, provider.url, email)
    parts = urlsplit(callback)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" in callbacks(name), callback
    return f"{parts.path}?{parts.query}"


async def send(gateway: str, method: str, path: str, headers: dict[str, str] | None = None) -> Reply:
    """One request with exactly these headers (cookies too: no jar), as a browser or attacker sends it."""
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http,
        http.request(method, f"{gateway}{path}", headers=headers or {}, allow_redirects=False) as r,
    ):
        body = await r.json() if r.content_type == "application/json" else {}
        return Reply(r.status, dict(r.headers), r.cookies, body)


async def callback(gateway: str, path: str, flow_cookie: str | None) -> Reply:
    headers = {"Cookie": f"lobe_sign_in={flow_cookie}"} if flow_cookie else {}
    return await send(gateway, "GET", path, headers)


async def signed_in(gateway: str, provider: OidcProviderServer, email: str, name: str = "oidc") -> Reply:
    """A whole sign-in as a browser makes it, with the gateway's provider `name`; the callback's reply."""
    flow = await begin(gateway, name)
    return await callback(gateway, await at_provider(flow, provider, email, name), flow.cookie.value)
