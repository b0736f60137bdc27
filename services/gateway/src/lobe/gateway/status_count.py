"""Counting an endpoint's answers by HTTP status, however the handler ends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web

from lobe.shared.openai_errors import ApiError

Answered = TypeVar("Answered", bound=web.StreamResponse)


async def counted(answer: Awaitable[Answered], count: Callable[[int], None]) -> Answered:
    """`answer`'s response; `count` gets its status, an ApiError's, or 499 when the client went
    away before an answer (the handler was cancelled)."""
    status = 499
    try:
        response = await answer
        status = response.status
        return response
    except ApiError as exc:
        status = exc.status
        raise
    finally:
        count(status)
