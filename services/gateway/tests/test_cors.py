"""CORS for browser clients: exact origins only, with credentials; a preflight from any other origin
is refused, and answers (streamed ones included) name the origin only when it is allowed."""

from __future__ import annotations

import aiohttp
from nats.aio.client import Client as NATS

from .support import HEADERS, ScriptedWorker, answers, serving

APP = "https://chat.example.com"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}
CHAT = {"model": "mock", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


async def preflight(base: str, origin: str) -> tuple[int, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as http,
        http.options(f"{base}/v1/chat/completions", headers={"Origin": origin, **PREFLIGHT}) as r,
    ):
        return r.status, dict(r.headers)


async def test_a_preflight_from_an_allowed_origin_is_answered_with_credentials(nats_url: str) -> None:
    async with serving(nats_url, cors_allowed_origins=APP) as base:
        status, headers = await preflight(base, APP)
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == APP  # exact, never *
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert headers["Access-Control-Allow-Headers"] == "authorization, content-type"
    assert headers["Vary"] == "Origin"


async def test_a_preflight_from_another_origin_is_refused(nats_url: str) -> None:
    async with serving(nats_url, cors_allowed_origins=APP) as base:
        status, headers = await preflight(base, "https://evil.example")
    assert status == 403
    assert "Access-Control-Allow-Origin" not in headers


async def test_a_streamed_answer_names_an_allowed_origin_and_exposes_the_lobe_headers(
    nats_url: str, worker_nc: NATS
) -> None:
    await ScriptedWorker(worker_nc, scripts=answers(2)).start()
    async with serving(nats_url, cors_allowed_origins=APP) as base, aiohttp.ClientSession() as http:
        url = f"{base}/v1/chat/completions"
        async with http.post(url, json=CHAT, headers={**HEADERS, "Origin": APP}) as r:
            assert r.status == 200
            await r.read()
            assert r.headers["Access-Control-Allow-Origin"] == APP
            exposed = {h.strip().lower() for h in r.headers["Access-Control-Expose-Headers"].split(",")}
            assert {"x-request-id", "x-lobe-deployment", "ratelimit-remaining"} <= exposed
        async with http.post(url, json=CHAT, headers={**HEADERS, "Origin": "https://evil.example"}) as r:
            assert r.status == 200  # the request itself is not CORS's business; the browser reads nothing
            await r.read()
            assert "Access-Control-Allow-Origin" not in r.headers


async def test_no_origins_configured_means_no_cors_at_all(nats_url: str) -> None:
    async with serving(nats_url) as base:
        status, headers = await preflight(base, APP)
    assert "Access-Control-Allow-Origin" not in headers
    assert status == 405
