"""CORS for browser clients: exact origins only (CORS_ALLOWED_ORIGINS), with credentials, because
a browser sends the session cookie cross-origin only to an origin the answer names exactly (a
wildcard and credentials never go together).

Preflights are answered by a middleware, before routing decides on 405; the headers of every
other answer are added as it is prepared, so a streamed (SSE) answer gets them too.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

CORS_ORIGINS = web.AppKey("cors_origins", frozenset)
ALLOWED_METHODS = "GET, POST, PUT, DELETE, OPTIONS"
# What a script may read of an answer beyond the CORS-safelisted headers.
EXPOSED_HEADERS = ", ".join(
    (
        "X-Request-Id",
        "X-Lobe-Cost-Usd",
        "Retry-After",
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
        "x-cache",
        "X-Lobe-Deployment",
        "X-Lobe-Provider",
        "X-Lobe-Attempts",
    )
)
PREFLIGHT_MAX_AGE_S = "600"


def _allowed(request: web.Request) -> str | None:
    origin = request.headers.get("Origin")
    return origin if origin is not None and origin in request.app[CORS_ORIGINS] else None


def _credentialed(origin: str) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


@web.middleware
async def cors_preflight(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
        response: web.StreamResponse = await handler(request)
        return response
    origin = _allowed(request)
    if origin is None:
        return web.Response(status=403, headers={"Vary": "Origin"})
    headers = _credentialed(origin)
    headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
    # The origin is trusted: whatever headers its script wants to send (Authorization, the SDKs' own).
    headers["Access-Control-Allow-Headers"] = request.headers.get("Access-Control-Request-Headers", "")
    headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE_S
    return web.Response(status=204, headers=headers)


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    origin = _allowed(request)
    if origin is not None:
        response.headers.update(_credentialed(origin))
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS


def setup_cors(app: web.Application, origins: frozenset[str]) -> None:
    app[CORS_ORIGINS] = origins
    if origins:
        app.middlewares.insert(0, cors_preflight)
        app.on_response_prepare.append(add_cors_headers)
