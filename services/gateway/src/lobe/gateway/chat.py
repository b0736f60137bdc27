"""POST /v1/chat/completions: the request's orchestration, from credentials to the last byte.

Authenticate, admit within the user's rate limits (lobe.gateway.ratelimit: requests and requests
in flight before the parse, tokens after it), parse, admit within the budget,
look the request up in the response cache (lobe.gateway.cache), then deliver the answer
(lobe.gateway.answer) from a worker or from the cache, as SSE or one JSON object. A stream the
client asked to be resumable runs apart from the handler and keeps its events
(lobe.gateway.resume). What the request
takes and records, and giving it back whatever ends it, is its Accounting's
(lobe.gateway.accounting).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from lobe.gateway.accounting import Accounting, Body
from lobe.gateway.answer import Answer
from lobe.gateway.auth.assembly import AUTH
from lobe.gateway.cache.response_cache import CACHE
from lobe.gateway.drain import LIVE_ANSWERS, WINDING_DOWN
from lobe.gateway.metrics import IN_FLIGHT, REQUESTS
from lobe.gateway.openai_format import ChunkWriter, CompletionAssembler
from lobe.gateway.outputs import JsonOutput, Output
from lobe.gateway.request_body import parse_body
from lobe.gateway.resources import RESOURCES
from lobe.gateway.resume.detach import detached_if_resumable
from lobe.gateway.resume.output import sse_output
from lobe.gateway.status_count import counted
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.chat import ChatEndpoint
from lobe.shared.openai_errors import ApiError

STREAM_KEY = web.RequestKey("lobe.stream", str)  # whether the client asked for SSE (metrics label)
# Up to this size a body is parsed before the rate limit: cheaper than the second Redis round trip
# that limiting first costs (the token window needs the parsed body). Measured with the limiter
# alone on real Redis at c=32: 0.35-0.39 ms of client CPU per request in one script run, 0.40-0.44
# ms in two (plus a round trip of latency); parsing a 16 KiB chat request costs 0.03 ms, 64 KiB
# 0.13 ms. A body of MAX_BODY_BYTES (4 MiB, ~8 ms) waits for the limit.
PARSE_FIRST_BYTES = 16 * 1024


async def chat_completions(request: web.Request) -> web.StreamResponse:
    # The trace starts in the HTTP middleware (lobe.shared.http_telemetry); the dispatch carries
    # it to the worker in the NATS headers.
    def count(status: int) -> None:
        REQUESTS.labels(status=str(status), stream=request.get(STREAM_KEY, "unknown")).inc()

    received_at = time.monotonic()
    IN_FLIGHT.inc()
    try:
        # A resumable stream runs apart from this handler (lobe.gateway.resume.detach).
        return await counted(
            detached_if_resumable(request, _chat_completions(request, received_at)), count, "chat"
        )
    finally:
        IN_FLIGHT.dec()


async def _chat_completions(request: web.Request, received_at: float) -> web.StreamResponse:
    account = await open_account(request, received_at)
    # However it ends (a bad body, a refusal, the client gone, an answer): what the request
    # took is given back or settled on the way out of this block.
    async with account:
        try:
            body = await admitted_body(request, account, parse_body)
            request[STREAM_KEY] = "true" if body.stream else "false"
            return await _answer(request, account, body)
        except ApiError as exc:
            # An error names the request too: the ledger's key, and what support asks for.
            exc.headers.setdefault("X-Request-Id", account.request_id)
            raise


async def open_account(
    request: web.Request, received_at: float, endpoint: ChatEndpoint = "chat"
) -> Accounting:
    """The authenticated caller's Accounting for this request (every API endpoint's first step).
    `endpoint`: the endpoint of a chat body (chat, or responses)."""
    resources = request.app[RESOURCES]
    caller = await request.app[AUTH].auth.authenticate(request)
    return Accounting(
        resources.settings,
        resources.rate_limits,
        resources.budget,
        request.app[CACHE],
        resources.bus,
        caller,
        received_at,
        uuid.uuid4().hex,
        endpoint,
        winding_down=request.app[WINDING_DOWN],
    )


async def admitted_body(
    request: web.Request, account: Accounting, parse: Callable[[web.Request], Awaitable[Body]]
) -> Body:
    """The parsed body, within the caller's rate limits (or a 400, a 429)."""
    length = request.content_length
    if length is not None and length <= PARSE_FIRST_BYTES:
        body = await parse(request)
        await account.admit(request, body)
        return body
    # The rate limit before the parse: a caller over their limit costs no parse of a large
    # body; the token window needs the parsed body (lobe.gateway.ratelimit.limiter).
    await account.admit(request)
    body = await parse(request)
    await account.admit_tokens(request, body)
    return body


async def _answer(
    request: web.Request, account: Accounting, body: ChatCompletionRequest
) -> web.StreamResponse:
    body = await account.reserve(request, body)
    request_id = account.request_id
    answer, headers = open_answer(request, account, body)
    output: Output = (
        await sse_output(
            request,
            ChunkWriter(request_id, body.model, body.wants_usage_chunk),
            headers,
            request_id,
            account.caller.user_id,
        )
        if body.stream
        else JsonOutput(CompletionAssembler(request_id, body.model), headers)
    )
    return await deliver(request, answer, output)


def open_answer(
    request: web.Request, account: Accounting, body: ChatCompletionRequest
) -> tuple[Answer, dict[str, str]]:
    """The answer to a chat body the budget admitted (the cache's replay, or a worker's on the
    account's endpoint), and the headers it starts with. Chat's and the Responses API's alike."""
    replay, request_id = account.replay, account.request_id
    dispatch = replay or request.app[RESOURCES].dispatcher.open(
        request_id, account.caller, body, account.endpoint, account.lease
    )
    answer = account.answer = Answer(
        dispatch,
        account.priced,
        account.received_at,
        live=replay is None,
        expose_deployment=account.settings.expose_deployment_names,
    )
    headers = {"X-Request-Id": request_id}
    if account.cache_key is not None:
        headers["X-Cache"] = "miss" if replay is None else "hit"
    return answer, headers


async def deliver(request: web.Request, answer: Answer, output: Output) -> web.StreamResponse:
    """Run the answer into `output`; a gateway shutting down ends it explicitly meanwhile."""
    live = request.app[LIVE_ANSWERS]
    live.add(answer)
    try:
        return await answer.deliver(output)
    finally:
        live.discard(answer)
