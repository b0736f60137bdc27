"""POST /v1/chat/completions: validate, dispatch over NATS, answer as SSE or one JSON object."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator

from aiohttp import web
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from lobe.gateway.dispatch import AnswerFrame, WorkerLost
from lobe.gateway.metrics import IN_FLIGHT, REQUESTS, TTFT
from lobe.gateway.openai_format import DONE_EVENT, ChunkWriter, CompletionAssembler, sse_event
from lobe.gateway.resources import RESOURCES, Resources
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.chat import (
    Caller,
    CancelReason,
    ChatCancelled,
    DeltaFrame,
    DoneFrame,
    ResetFrame,
    TokenUsage,
    UsageFrame,
    cancel_subject,
)
from lobe.shared.events.usage import USAGE_RECORDED, UsageRecorded
from lobe.shared.facts import publish_fact
from lobe.shared.openai_errors import ApiError, invalid_request
from lobe.shared.tokens import estimate_prompt_tokens, estimate_tokens

log = logging.getLogger(__name__)
STREAM_KEY = web.RequestKey("lobe.stream", str)  # whether the client asked for SSE (metrics label)
TRACER = trace.get_tracer("lobe.gateway")
LOST_USAGE_ATTEMPTS = 3  # the client is already answered; a short retry keeps the handler brief

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: pass each event through at once
}


async def parse_body(request: web.Request) -> ChatCompletionRequest:
    raw = await request.read()
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ApiError(
            400, f"We could not parse the JSON body of your request: {exc}", "invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.", "invalid_json")
    try:
        return ChatCompletionRequest.model_validate(data)
    except ValidationError as exc:
        raise invalid_request(exc) from None


async def chat_completions(request: web.Request) -> web.StreamResponse:
    # The trace starts here; dispatch carries it to the worker in the NATS headers.
    status, stream = 499, "unknown"  # 499: the client went away before an answer
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
        REQUESTS.labels(status=str(status), stream=request.get(STREAM_KEY, stream)).inc()


async def _chat_completions(request: web.Request) -> web.StreamResponse:
    resources = request.app[RESOURCES]
    caller = await resources.keys.authenticate(request)
    body = await parse_body(request)
    request[STREAM_KEY] = "true" if body.stream else "false"
    request_id = uuid.uuid4().hex
    held = await resources.budget.reserve(request_id, caller, body)
    if held and body.output_token_limit is None:
        # The hold covers this many output tokens; the provider must not generate more.
        body = body.model_copy(update={"max_tokens": resources.settings.default_max_output_tokens})
    answer = Answer(resources, request_id, caller, body)
    try:
        if body.stream:
            return await answer.stream_sse(request)
        return await answer.complete()
    except ApiError as exc:
        # Failed before the first byte. If no worker took it, no usage event will settle the
        # hold; releasing one that a usage event also settles is harmless (both are idempotent).
        if held and answer.usage is None:
            await resources.budget.release(request_id, caller)
        answer.end_reason = "timeout" if exc.status == 504 else "abandoned"
        raise
    except asyncio.CancelledError:
        answer.end_reason = "client_disconnected"
        raise
    finally:
        await answer.frames.aclose()
        if not answer.done:
            # Whatever ended it early, the worker must stop the provider call (and the spend)
            # now, not when the answer would have finished.
            cancel = ChatCancelled(request_id=request_id, reason=answer.end_reason)
            await asyncio.shield(resources.nc.publish(cancel_subject(request_id), cancel.encode()))


class Answer:
    """One request's answer: frames from the dispatcher, written in the client's format."""

    def __init__(
        self, resources: Resources, request_id: str, caller: Caller, body: ChatCompletionRequest
    ) -> None:
        self.resources = resources
        self.request_id = request_id
        self.caller = caller
        self.body = body
        self.started_at = time.monotonic()
        self.output: list[str] = []
        self.pending_usage: bytes | None = None  # OpenAI sends the usage chunk after the finish
        self.usage: UsageFrame | None = None
        self.done = False  # the answer reached the client complete
        self.end_reason: CancelReason = "abandoned"
        self.task: asyncio.Task[object] | None = None
        self.aborted = False
        self.frames: AsyncGenerator[AnswerFrame, None] = resources.dispatcher.stream(request_id, caller, body)

    def _headers(self) -> dict[str, str]:
        return {"X-Request-Id": self.request_id}

    async def complete(self) -> web.Response:
        assembler = CompletionAssembler(self.request_id, self.body.model)
        async for frame in self.frames:
            if isinstance(frame, DeltaFrame):
                assembler.add(frame)
            elif isinstance(frame, ResetFrame):
                assembler.reset()
            elif isinstance(frame, UsageFrame):
                assembler.usage = await self._priced(frame)
            elif isinstance(frame, DoneFrame):
                self.done = True
                headers = self._headers()
                if assembler.usage is not None and assembler.usage.cost_usd is not None:
                    headers["X-Lobe-Cost-Usd"] = f"{assembler.usage.cost_usd:.6f}"
                return web.json_response(assembler.build(frame), headers=headers)
        raise ApiError(502, "The answer ended without completing.", "stream_truncated")

    async def stream_sse(self, request: web.Request) -> web.StreamResponse:
        frames = self.frames
        first = await anext(frames)  # errors before the first byte become a plain HTTP error
        response = web.StreamResponse(headers={**SSE_HEADERS, **self._headers()})
        await response.prepare(request)
        self.task = asyncio.current_task()
        self.resources.streams.add(self)
        writer = ChunkWriter(self.request_id, self.body.model, self.body.wants_usage_chunk)
        try:
            frame: AnswerFrame | None = first
            while frame is not None:
                if await self._write(response, writer, frame):
                    return response
                frame = await anext(frames, None)
            raise ApiError(502, "The answer ended without completing.", "stream_truncated")
        except ApiError as exc:
            if isinstance(exc, WorkerLost):
                await self._record_lost_usage()
            # After the first byte the status is sent: an OpenAI error event, and no [DONE].
            await response.write(sse_event(exc.body()))
            await response.write_eof()
            return response
        except asyncio.CancelledError:
            if not self.aborted:
                raise  # the client left
            # Shutdown past its grace: the client must read an error, not a stream that stops.
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            self.end_reason = "shutdown"
            shutdown = ApiError(503, "The gateway shut down before the answer completed.", "gateway_shutdown")
            await response.write(sse_event(shutdown.body()))
            await response.write_eof()
            return response
        finally:
            self.resources.streams.discard(self)

    def abort(self) -> None:
        """Shutdown: end this stream now, with an error event (see stream_sse)."""
        self.aborted = True
        if self.task is not None:
            self.task.cancel()

    async def _write(self, response: web.StreamResponse, writer: ChunkWriter, frame: AnswerFrame) -> bool:
        """Write one frame; True once the answer is complete."""
        if isinstance(frame, DeltaFrame):
            if not self.output:
                TTFT.observe(time.monotonic() - self.started_at)
            self.output.append(frame.content or frame.reasoning_content or "")
            await response.write(writer.delta(frame))
        elif isinstance(frame, ResetFrame):
            if writer.sent_role:  # text already on the client's screen cannot be taken back
                raise ApiError(
                    502, "The provider failed mid-answer; the partial answer is void.", "answer_reset"
                )
        elif isinstance(frame, UsageFrame):
            if writer.include_usage:
                self.pending_usage = writer.usage(await self._priced(frame))
        elif isinstance(frame, DoneFrame):
            self.done = True
            await response.write(writer.finish(frame))
            if self.pending_usage:
                await response.write(self.pending_usage)
            await response.write(DONE_EVENT)
            await response.write_eof()
            return True
        return False

    async def _priced(self, frame: UsageFrame) -> UsageFrame:
        """The usage frame with billing's cost for it (off the TTFT path: after the last token)."""
        self.usage = frame
        if frame.cost_usd is not None or not self.resources.settings.billing_enabled:
            return frame
        cost = await self.resources.budget.quote(
            self.request_id, frame.provider, self.body.model, frame.usage
        )
        return frame if cost is None else frame.model_copy(update={"cost_usd": cost})

    async def _record_lost_usage(self) -> None:
        """The worker died mid-answer and never recorded usage: record what the client got."""
        usage = TokenUsage(
            prompt_tokens=estimate_prompt_tokens(self.body),
            completion_tokens=sum(estimate_tokens(text) for text in self.output),
            basis="partial",
        )
        event = UsageRecorded(
            request_id=self.request_id,
            user_id=self.caller.user_id,
            api_key_id=self.caller.api_key_id,
            provider="unknown",
            deployment="unknown",
            model=self.body.model,
            usage=usage,
            status="error",
            error_code="worker_lost",
            duration_ms=(time.monotonic() - self.started_at) * 1000,
            stream=self.body.stream,
        )
        await publish_fact(self.resources.js, USAGE_RECORDED, event, attempts=LOST_USAGE_ATTEMPTS)
