"""Rate-limit headers, on every answer to a limited request (SSE, JSON and errors alike).

- `RateLimit-Limit` / `-Remaining` / `-Reset` (the IETF draft's, the seed's "standard headers"),
  plus `RateLimit-Policy` (`10;w=60`): the request window that applies to the request.
- OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, which SDKs and clients read.
- On a 429: `Retry-After` (seconds) and `retry-after-ms` (the openai SDKs honour it first).

Reset is when the window's oldest entry leaves it, i.e. when remaining next goes up: for a
sliding window that is the earliest moment a refused request could pass.
"""

from __future__ import annotations

import math

from aiohttp import web

from lobe.gateway.ratelimit.windows import WindowState

RATE_HEADERS = web.RequestKey("lobe.rate_headers", dict[str, str])


def seconds(ms: int) -> str:
    return str(max(math.ceil(ms / 1000), 0))


def duration(ms: int) -> str:
    """OpenAI's spelling of a duration: `120ms`, `1.5s`, `6m0s`."""
    if ms < 1000:
        return f"{ms}ms"
    minutes, rest_ms = divmod(ms, 60_000)
    secs = f"{rest_ms / 1000:.3f}".rstrip("0").rstrip(".")
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def standard(state: WindowState) -> dict[str, str]:
    window = state.window
    return {
        "RateLimit-Limit": str(window.limit),
        "RateLimit-Remaining": str(state.remaining),
        "RateLimit-Reset": seconds(state.frees_in_ms),
        "RateLimit-Policy": f"{window.limit};w={window.window_s}",
    }


def openai(state: WindowState, unit: str) -> dict[str, str]:
    return {
        f"x-ratelimit-limit-{unit}": str(state.window.limit),
        f"x-ratelimit-remaining-{unit}": str(state.remaining),
        f"x-ratelimit-reset-{unit}": duration(state.frees_in_ms),
    }


def retry_after(ms: int) -> dict[str, str]:
    return {"Retry-After": seconds(ms), "retry-after-ms": str(ms)}


async def add_rate_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: whatever answers the request (stream, JSON, error) carries them."""
    headers = request.get(RATE_HEADERS)
    if headers:
        for name, value in headers.items():
            response.headers.setdefault(name, value)
