"""POST /v1/embeddings: the request's orchestration, through the same edge as chat.

Authenticate, admit within the user's rate limits (requests, in flight, and the token window on
the inputs' upper bound), parse, admit within the budget (the hold: every input's token ceiling,
lobe.shared.token_ceiling) while the response cache is looked up (embeddings are deterministic:
cached per user), then ask a worker on `embeddings.request` and answer in OpenAI's shape. What the
request takes and records, and giving it back however it ends, is its Accounting's.
"""

from __future__ import annotations

import time

from aiohttp import web

from lobe.gateway.accounting import Accounting
from lobe.gateway.chat import admitted_body, open_account
from lobe.gateway.embeddings_format import embeddings_object
from lobe.gateway.metrics import EMBEDDINGS_REQUESTS
from lobe.gateway.request_body import parse_embeddings_body
from lobe.gateway.resources import RESOURCES, Resources
from lobe.gateway.route_headers import route_headers
from lobe.gateway.status_count import counted
from lobe.gateway.worker_request import ask_workers, deadline_ms, failed, no_answer
from lobe.shared.embeddings_schema import EmbeddingsRequest
from lobe.shared.events.embeddings import EMBEDDINGS_REQUEST, EmbeddingsAnswer, EmbeddingsRequested
from lobe.shared.openai_errors import ApiError


async def embeddings(request: web.Request) -> web.Response:
    def count(status: int) -> None:
        EMBEDDINGS_REQUESTS.labels(status=str(status)).inc()

    return await counted(_embeddings(request, time.monotonic()), count, "embeddings")


async def _embeddings(request: web.Request, received_at: float) -> web.Response:
    account = await open_account(request, received_at)
    async with account:  # what the request took is given back or settled on the way out
        try:
            body = await admitted_body(request, account, parse_embeddings_body)
            return await _answer(request, request.app[RESOURCES], account, body)
        except ApiError as exc:
            exc.headers.setdefault("X-Request-Id", account.request_id)
            raise


async def _answer(
    request: web.Request, resources: Resources, account: Accounting, body: EmbeddingsRequest
) -> web.Response:
    body = await account.reserve(request, body)
    answer = account.cached_embeddings
    if answer is None:
        answer = await _ask_workers(resources, account, body)
        account.embedded(answer)
    headers = {"X-Request-Id": account.request_id}
    if account.cache_key is not None:
        headers["X-Cache"] = "miss" if account.cached_embeddings is None else "hit"
    if answer is None:
        raise no_answer(account, resources.settings.request_timeout_s, "embeddings")
    headers |= route_headers(answer.route, resources.settings.expose_deployment_names)
    if answer.error is not None:
        raise failed(answer.error, headers)
    return web.json_response(embeddings_object(answer, body), headers=headers)


async def _ask_workers(
    resources: Resources, account: Accounting, body: EmbeddingsRequest
) -> EmbeddingsAnswer | None:
    event = EmbeddingsRequested(
        request_id=account.request_id,
        caller=account.caller,
        body=body,
        deadline_ms=deadline_ms(resources),
        lease=account.lease,
    )
    reply = await ask_workers(resources, EMBEDDINGS_REQUEST, event)
    return reply if isinstance(reply, EmbeddingsAnswer) else None
