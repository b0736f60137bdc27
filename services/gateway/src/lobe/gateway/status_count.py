"""Counting an endpoint's answers by HTTP status, however the handler ends, and naming the
endpoint on the request's span (every API endpoint's handler runs through here)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web
from opentelemetry import trace

from lobe.shared.openai_errors import ApiError

Answered = TypeVar("Answered", bound=web.StreamResponse)


async def counted(answer: Awaitable[Answered], count: Callable[[int], None], endpoint: str) -> Answered:
    """`answer`'s response; `count` gets its status, an ApiError's, or 499 when the client went
    away before an answer (the handler was cancelled). `endpoint` (chat, responses, embeddings,
    images, speech, transcriptions: the models file's `serves` words) goes on the HTTP
    middleware's span as `lobe.endpoint`, as the worker's run span carries it."""
    trace.get_current_span().set_attribute("lobe.endpoint", endpoint)
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
