"""POST /v1/chat/completions: the request's orchestration, from credentials to the last byte.

Authenticate, admit within the user's rate limits (lobe.gateway.ratelimit: requests and requests
in flight before the parse, tokens after it), parse, admit within the budget,
look the request up in the response cache (lobe.gateway.cache), then deliver the answer
(lobe.gateway.answer) from a worker or from the cache, as SSE or one JSON object. Whatever ends
it, the worker is told to stop, a budget hold that no usage event will settle is released, the
token estimate is corrected with the real usage, and a completed answer is offered to the cache.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from aiohttp import web

from lobe.gateway.answer import Answer
from lobe.gateway.cache.key import CacheKey
from lobe.gateway.metrics import IN_FLIGHT, REQUESTS
from lobe.gateway.openai_format import ChunkWriter, CompletionAssembler
from lobe.gateway.outputs import JsonOutput, Output, SseOutput
from lobe.gateway.ratelimit.limiter import Admission
from lobe.gateway.request_body import parse_body
from lobe.gateway.resources import RESOURCES
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.chat import Caller
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
    status = 499  # the client went away before an answer
    received_at = time.monotonic()
    IN_FLIGHT.inc()
    try:
        response = await _chat_completions(request, received_at)
        status = response.status
        return response
    except ApiError as exc:
        status = exc.status
        raise
    finally:
        IN_FLIGHT.dec()
        REQUESTS.labels(status=str(status), stream=request.get(STREAM_KEY, "unknown")).inc()


async def _chat_completions(request: web.Request, received_at: float) -> web.StreamResponse:
    resources = request.app[RESOURCES]
    caller = await resources.auth.authenticate(request)
    request_id = uuid.uuid4().hex
    admission = None
    try:
        length = request.content_length
        if length is not None and length <= PARSE_FIRST_BYTES:
            body = await parse_body(request)
            admission = await resources.rate_limits.admit(request, caller, request_id, True, body)
        else:
            # The rate limit before the parse: a caller over their limit costs no parse of a large
            # body; the token window needs the parsed body (lobe.gateway.ratelimit.limiter).
            admission = await resources.rate_limits.admit(request, caller, request_id, in_flight=True)
            body = await parse_body(request)
            await resources.rate_limits.admit_tokens(request, admission, body)
        request[STREAM_KEY] = "true" if body.stream else "false"
        return await _admitted(request, body, caller, request_id, received_at, admission)
    except ApiError as exc:
        # An error names the request too: the ledger's key, and what support asks for.
        exc.headers.setdefault("X-Request-Id", request_id)
        raise
    finally:
        # However it ended (a bad body, a refusal, the client gone): its place in flight is given
        # back. A no-op when the answer's wind-up settled it with the real usage.
        resources.rate_limits.settle(admission, tokens_used=None)


async def _admitted(
    request: web.Request,
    body: ChatCompletionRequest,
    caller: Caller,
    request_id: str,
    received_at: float,
    admission: Admission | None,
) -> web.StreamResponse:
    resources = request.app[RESOURCES]
    cache_key = resources.cache.key_for(request, caller, body)  # None: not a cacheable request
    # The cache lookup is a read: it runs during the budget reserve rather than after it, so a
    # cacheable request waits for one round trip less before its dispatch.
    lookup = asyncio.ensure_future(resources.cache.lookup(cache_key)) if cache_key else None
    try:
        held = await resources.budget.reserve(request_id, caller, body)
    except BaseException:  # refused, or the client left: the lookup's answer is not wanted
        if lookup is not None:
            lookup.cancel()
        resources.rate_limits.settle(admission, tokens_used=0)
        raise
    replay = await lookup if lookup is not None else None
    if held and body.output_token_limit is None:
        # The hold covers this many output tokens; the provider must not generate more.
        body = body.model_copy(update={"max_tokens": resources.settings.default_max_output_tokens})
    answer = Answer(resources, request_id, caller, body, received_at, replay)
    headers = {"X-Request-Id": request_id}
    if cache_key is not None:
        headers["X-Cache"] = "miss" if replay is None else "hit"
    output: Output = (
        SseOutput(request, ChunkWriter(request_id, body.model, body.wants_usage_chunk), headers)
        if body.stream
        else JsonOutput(CompletionAssembler(request_id, body.model), headers)
    )
    try:
        return await answer.deliver(output)
    finally:
        # Shielded: a client that leaves must not cut these short.
        await asyncio.shield(_wind_up(answer, held, admission, cache_key))


async def _wind_up(
    answer: Answer, held: bool, admission: Admission | None, cache_key: CacheKey | None
) -> None:
    resources = answer.resources
    if not answer.done:
        await answer.dispatch.cancel(answer.end_reason)
    await answer.record_replayed_usage()
    if held and not answer.usage_is_settled:
        await resources.budget.release(answer.request_id, answer.caller)
    resources.rate_limits.settle(admission, answer.tokens_used)
    if cache_key is not None and answer.done and answer.replay is None:
        resources.cache.store(cache_key, answer.frames)
