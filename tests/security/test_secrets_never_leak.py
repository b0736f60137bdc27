"""No secret reaches a log line, an error body or a metrics page: traffic through the whole running
suite (served and failed requests, refused credentials, an upstream refusing the provider key, an
admin's work, a revoked key and a signed-out session) with every kind of secret seeded, logged at
DEBUG, then every line every process wrote and every error answer searched for each secret."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import aiohttp

from ..e2e.sign_in_support import sign_in
from .conftest import ADMIN_EMAIL, RunningSuite, _issuer

CHAT = "/v1/chat/completions"
# What users type is theirs: no log line carries it either (error bodies may quote a bad field).
PROMPT = "Is this secret? My diary says the password is hunter2-7f3a9c"


def body(model: str, stream: bool = False, content: str = PROMPT) -> dict[str, object]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": content}]}


@dataclass
class Seen:
    """Every answer's status and body (SSE streams whole: an error event counts as an error body)."""

    answers: list[tuple[str, int, str]] = field(default_factory=list)

    async def call(
        self, http: aiohttp.ClientSession, method: str, url: str, token: str | None = None, **kwargs: object
    ) -> tuple[int, str]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if "data" in kwargs:  # raw bytes, sent as JSON is: the parser, not the 415, is under test
            headers["Content-Type"] = "application/json"
        async with http.request(method, url, headers=headers, **kwargs) as r:  # type: ignore[arg-type]
            text = await r.text(errors="replace")
        self.answers.append((f"{method} {url}", r.status, text))
        return r.status, text

    def errors(self) -> list[tuple[str, int, str]]:
        return [a for a in self.answers if a[1] >= 400 or '"error"' in a[2]]


async def traffic(suite: RunningSuite) -> Seen:
    seen = Seen()
    gw, billing, key, admin = suite.gateway, suite.billing, suite.api_key, suite.admin_token
    async with aiohttp.ClientSession() as http:
        # Served: the mock, and a provider reached with the seeded OpenAI key, streamed and not.
        assert (await seen.call(http, "POST", gw + CHAT, key, json=body("mock")))[0] == 200
        assert (await seen.call(http, "POST", gw + CHAT, key, json=body("openai-ok")))[0] == 200
        assert (await seen.call(http, "POST", gw + CHAT, key, json=body("openai-ok", stream=True)))[0] == 200
        # The provider refuses the key; a model nobody serves; malformed, bad Unicode, too large.
        status, text = await seen.call(http, "POST", gw + CHAT, key, json=body("openai-refusing"))
        assert status >= 400 or '"error"' in text
        await seen.call(http, "POST", gw + CHAT, key, json=body("openai-refusing", stream=True))
        assert (await seen.call(http, "POST", gw + CHAT, key, json=body("no-such-model")))[0] == 404
        assert (await seen.call(http, "POST", gw + CHAT, key, data=b'{"model": "mock", '))[0] == 400
        bad_unicode = b'{"model": "mock", "messages": [{"role": "user", "content": "\\ud800"}]}'
        assert (await seen.call(http, "POST", gw + CHAT, key, data=bad_unicode))[0] == 400
        assert (await seen.call(http, "POST", gw + CHAT, key, data=b"x" * (5 * 1024 * 1024)))[0] == 413
        # Wrong credentials everywhere; the admin token is no credential at the gateway.
        assert (await seen.call(http, "POST", gw + CHAT, "sk-lobe-not-a-key", json=body("mock")))[0] == 401
        assert (await seen.call(http, "POST", gw + "/v1/admin/users", admin, json={"id": "x"}))[0] == 401
        assert (await seen.call(http, "POST", gw + "/v1/admin/users", key, json={"id": "x"}))[0] == 401
        assert (await seen.call(http, "GET", billing + "/v1/usage", "sk-lobe-not-a-key"))[0] == 401
        assert (await seen.call(http, "POST", billing + "/v1/admin/users", "wrong", json={"id": "x"}))[
            0
        ] == 401
        # An admin's work (through the gateway with a session, and at billing with the token).
        status, _ = await seen.call(http, "POST", gw + "/v1/admin/users", suite.session, json={"id": "sam"})
        assert status == 201
        status, issued = await seen.call(http, "POST", f"{billing}/v1/admin/users/sam/keys", admin, json={})
        assert status == 201
        new_key = json.loads(issued)
        suite.secrets["issued API key"] = new_key["key"]
        assert (await seen.call(http, "POST", gw + CHAT, new_key["key"], json=body("mock")))[0] == 200
        assert (await seen.call(http, "DELETE", f"{billing}/v1/admin/keys/{new_key['id']}", admin))[0] == 200
        await asyncio.sleep(0.5)  # the revocation reaches the gateway over NATS
        assert (await seen.call(http, "POST", gw + CHAT, new_key["key"], json=body("mock")))[0] == 401
        # A session signed out, then used.
        other = (await sign_in(gw, await _issuer(gw), ADMIN_EMAIL)).body["access_token"]
        suite.secrets["signed-out session JWT"] = other
        assert (await seen.call(http, "POST", gw + "/auth/logout", other))[0] == 200
        assert (await seen.call(http, "GET", gw + "/auth/session", other))[0] == 401
        assert (await seen.call(http, "GET", billing + "/v1/usage", key))[0] == 200
    return seen


async def metrics_pages(suite: RunningSuite) -> list[str]:
    ports = ("GATEWAY_OPS_PORT", "CHAT_WORKER_OPS_PORT", "BILLING_OPS_PORT", "METRICS_OPS_PORT")
    pages = []
    async with aiohttp.ClientSession() as http:
        for var in ports:
            async with http.get(f"http://127.0.0.1:{suite.dev.ports[var]}/metrics") as r:
                assert r.status == 200
                pages.append(await r.text())
    return pages


async def test_no_secret_appears_in_any_log_line_error_body_or_metrics_page(
    running_suite: RunningSuite,
) -> None:
    seen = await traffic(running_suite)
    pages = await metrics_pages(running_suite)
    await asyncio.sleep(1)  # the last lines reach lobe dev's output
    logs = running_suite.logs()
    assert len(logs) > 100, "the suite logged too little for this test to mean anything"
    assert len(seen.errors()) >= 12
    secrets = running_suite.secrets
    assert len(secrets) >= 14, sorted(secrets)
    leaks = []
    for name, value in secrets.items():
        assert len(value) >= 16, name
        leaks += [f"{name} in a log line: {line[:160]}" for line in logs if value in line]
        leaks += [
            f"{name} in the error of {call} ({status})"
            for call, status, text in seen.errors()
            if value in text
        ]
        leaks += [f"{name} on a /metrics page" for page in pages if value in page]
    leaks += [f"the prompt in a log line: {line[:160]}" for line in logs if "hunter2-7f3a9c" in line]
    assert leaks == [], "\n".join(leaks)
