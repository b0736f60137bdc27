"""POST /v1/chat/completions: the request's orchestration, from credentials to the last byte.

Authenticate, parse, admit within the user's budget, then deliver the answer (lobe.gateway.answer)
as SSE or one JSON object; whatever ends it, the worker is told to stop and a budget hold that no
usage event will settle is released.
"""

from __future__ import annotations

import asyncio
import uuid

from aiohttp import web
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from lobe.gateway.answer import Answer
from lobe.gateway.metrics import IN_FLIGHT, REQUESTS
from lobe.gateway.openai_format import ChunkWriter, CompletionAssembler
from lobe.gateway.outputs import JsonOutput, Output, SseOutput
from lobe.gateway.request_body import parse_body
from lobe.gateway.resources import RESOURCES
from lobe.shared.openai_errors import ApiError

STREAM_KEY = web.RequestKey("lobe.stream", str)  # whether the client asked for SSE (metrics label)
TRACER = trace.get_tracer("lobe.gateway")


async def chat_completions(request: web.Request) -> web.StreamResponse:
    # The trace starts here; the dispatch carries it to the worker in the NATS headers.
    status = 499  # the client went away before an answer
    IN_FLIGHT.inc()
    try:
        with TRACER.start_as_current_span("POST /v1/chat/completions", kind=SpanKind.SERVER):
            response = await _chat_completions(request)
        status = response.status
        return response
    except ApiError as exc:
        status = exc.status
        raise
    finally:
        IN_FLIGHT.dec()
        REQUESTS.labels(status=str(status), stream=request.get(STREAM_KEY, "unknown")).inc()


async def _chat_completions(request: web.Request) -> web.StreamResponse:
    resources = request.app[RESOURCES]
    caller = await resources.auth.authenticate(request)
    body = await parse_body(request)
    request[STREAM_KEY] = "true" if body.stream else "false"
    request_id = uuid.uuid4().hex
    held = await resources.budget.reserve(request_id, caller, body)
    if held and body.output_token_limit is None:
        # The hold covers this many output tokens; the provider must not generate more.
        body = body.model_copy(update={"max_tokens": resources.settings.default_max_output_tokens})
    answer = Answer(resources, request_id, caller, body)
    headers = {"X-Request-Id": request_id}
    output: Output = (
        SseOutput(request, ChunkWriter(request_id, body.model, body.wants_usage_chunk), headers)
        if body.stream
        else JsonOutput(CompletionAssembler(request_id, body.model), headers)
    )
    try:
        return await answer.deliver(output)
    finally:
        # Shielded: a client that leaves must not cut these short.
        await asyncio.shield(_wind_up(answer, held))


async def _wind_up(answer: Answer, held: bool) -> None:
    if not answer.done:
        await answer.dispatch.cancel(answer.end_reason)
    if held and not answer.usage_is_settled:
        await answer.resources.budget.release(answer.request_id, answer.caller)
