"""Asking the workers one request-reply command (embeddings, images, speech, transcription) and
turning their answer's failure, or their silence, into the client's error; a media endpoint's
handler run in its Accounting and counted by status (`media_endpoint`)."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from lobe.gateway.accounting import Accounting
from lobe.gateway.chat import admitted_body, open_account
from lobe.gateway.dispatch import no_worker
from lobe.gateway.metrics import MEDIA_REQUESTS
from lobe.gateway.resources import RESOURCES, Resources
from lobe.gateway.status_count import counted
from lobe.shared.events.embeddings import EmbeddingsFailure
from lobe.shared.openai_errors import ApiError

# The worker's deadline is the request's timeout; its reply may take this much longer to arrive.
REPLY_MARGIN_S = 2.0


async def ask_workers(resources: Resources, subject: str, event: BaseModel) -> BaseModel | None:
    """The bus's request (lobe.shared.bus): the catalog's subject, the reply decoded into its model;
    None when no worker answered in time."""
    return await resources.bus.request(subject, event, resources.settings.request_timeout_s + REPLY_MARGIN_S)


Event = TypeVar("Event", bound=BaseModel)


async def admitted_event(
    request: web.Request, account: Accounting, parse: Callable[..., Any], event: type[Event]
) -> Event:
    """The edge's steps of an endpoint the workers answer in one reply: the body parsed, admitted by
    the rate limits and held in the budget, then the event that asks the workers for it."""
    body = await admitted_body(request, account, parse)
    body = await account.reserve(request, body)
    return event(
        request_id=account.request_id,
        caller=account.caller,
        body=body,
        deadline_ms=deadline_ms(request.app[RESOURCES]),
    )


def deadline_ms(resources: Resources) -> int:
    return int(resources.settings.request_timeout_s * 1000)


def no_answer(account: Accounting, timeout_s: float, what: str) -> ApiError:
    """No reply: no worker took it (NATS says so at once), or none answered in time."""
    waited = time.monotonic() - account.received_at
    if waited >= timeout_s:
        return ApiError(504, f"No chat worker answered the {what} request in time.", "timeout")
    return no_worker("No chat worker is running.")


def failed(error: EmbeddingsFailure, headers: dict[str, str]) -> ApiError:
    """The worker's failure as OpenAI's error (a 404 names the model)."""
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(max(math.ceil(error.retry_after_s), 1))
    param = "model" if error.status == 404 else None
    return ApiError(error.status, error.message, error.code, headers=headers, param=param)


Handler = Callable[[web.Request, Accounting], Awaitable[web.StreamResponse]]


async def media_endpoint(endpoint: str, request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run a media endpoint's handler in its Accounting, counting its answer by status."""

    def count(status: int) -> None:
        MEDIA_REQUESTS.labels(endpoint=endpoint, status=str(status)).inc()

    return await counted(_in_account(request, handler), count, endpoint)


async def _in_account(request: web.Request, handler: Handler) -> web.StreamResponse:
    account = await open_account(request, time.monotonic())
    async with account:  # what the request took is given back or settled on the way out
        try:
            return await handler(request, account)
        except ApiError as exc:
            exc.headers.setdefault("X-Request-Id", account.request_id)
            raise
