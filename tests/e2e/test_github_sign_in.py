"""GitHub sign-in against a fake GitHub on loopback speaking its wire format: the authorize
redirect, the token endpoint (form in, JSON out with Accept: application/json, errors as 200 with
an `error` field, PKCE checked), and the REST API's /user and /user/emails."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web

from lobe.billing.service import BillingService
from lobe.devtools.ports import free_port

from .conftest import billing_settings
from .sign_in_support import key_set, new_key, start_auth_gateway


@dataclass
class FakeGitHub:
    emails: list[dict[str, Any]]
    codes: dict[str, str] = field(default_factory=dict)  # code -> PKCE challenge
    tokens: set[str] = field(default_factory=set)

    async def authorize(self, request: web.Request) -> web.Response:
        q = request.query
        assert q["code_challenge_method"] == "S256"
        code = secrets.token_hex(10)
        self.codes[code] = q["code_challenge"]
        target = f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}"
        return web.Response(status=302, headers={"Location": target})

    async def access_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        challenge = self.codes.pop(str(form.get("code")), None)
        verifier = str(form.get("code_verifier", ""))
        computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge is None or computed != challenge or form.get("client_secret") != "gh-secret":
            return web.json_response(
                {
                    "error": "bad_verification_code",
                    "error_description": "The code passed is incorrect or expired.",
                }
            )
        token = "gho_" + secrets.token_hex(18)
        self.tokens.add(token)
        return web.json_response(
            {"access_token": token, "token_type": "bearer", "scope": "read:user,user:email"}
        )

    def _authorized(self, request: web.Request) -> None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "token") or token not in self.tokens:
            raise web.HTTPUnauthorized(text='{"message": "Bad credentials"}', content_type="application/json")

    async def user(self, request: web.Request) -> web.Response:
        self._authorized(request)
        return web.json_response({"login": "octocat", "id": 583231, "name": "The Octocat", "email": None})

    async def user_emails(self, request: web.Request) -> web.Response:
        self._authorized(request)
        return web.json_response(self.emails)


@pytest.fixture
async def github() -> AsyncIterator[tuple[FakeGitHub, str]]:
    fake = FakeGitHub(emails=[])
    app = web.Application()
    app.router.add_get("/login/oauth/authorize", fake.authorize)
    app.router.add_post("/login/oauth/access_token", fake.access_token)
    app.router.add_get("/api/user", fake.user)
    app.router.add_get("/api/user/emails", fake.user_emails)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield fake, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def _sign_in(gateway: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway}/auth/login/github", allow_redirects=False) as r:
            flow = r.cookies["lobe_sign_in"].value
            location = r.headers["Location"]
        async with http.get(location, allow_redirects=False) as r:  # the user approves at GitHub
            callback = r.headers["Location"]
        async with http.get(callback, headers={"Cookie": f"lobe_sign_in={flow}"}, allow_redirects=False) as r:
            return r.status, await r.json()


async def test_github_sign_in_uses_a_verified_address_and_refuses_unverified_ones(
    github: tuple[FakeGitHub, str], nats_url: str, redis_url: str, billing_db: str
) -> None:
    fake, url = github
    async with BillingService(billing_settings(nats_url, billing_db, "t")):
        gateway = await start_auth_gateway(
            nats_url,
            redis_url,
            key_set(new_key("gh")),
            github_client_id="gh-client",
            github_client_secret="gh-secret",
            github_url=url,
            github_api_url=f"{url}/api",
            allowed_email_domains="corp.example",
        )
        fake.emails = [
            {"email": "octo@home.example", "primary": True, "verified": True, "visibility": "public"},
            {"email": "octo@corp.example", "primary": False, "verified": True, "visibility": None},
        ]
        status, body = await _sign_in(gateway.url)
        assert status == 200, body
        assert body["user"]["email"] == "octo@corp.example"  # the verified one the allow-list takes

        fake.emails = [{"email": "octo@corp.example", "primary": True, "verified": False, "visibility": None}]
        status, body = await _sign_in(gateway.url)
        assert (status, body["error"]["code"]) == (403, "email_unverified")
        await gateway.runner.cleanup()
