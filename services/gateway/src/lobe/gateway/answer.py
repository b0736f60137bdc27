"""The answer loop: one request's frames, from its dispatch to the client's output.

One loop for both outputs (SSE and JSON, lobe.gateway.outputs), so every rule about an answer
holds for both: the first token's timing, pricing the usage, recording the usage of a worker
that died mid-answer (it never will), and ending with an explicit error at shutdown. The frames
come from a worker (a Dispatch) or from the response cache (a Replay): one shape for both.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import web

from lobe.gateway.cache.replay import Replay
from lobe.gateway.dispatch import AnswerFrame, Dispatch, Idle, WorkerLost
from lobe.gateway.metrics import OVERHEAD, TTFT
from lobe.gateway.outputs import Output
from lobe.gateway.resources import Resources
from lobe.gateway.route_headers import route_headers
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.chat import Caller, CancelReason, DeltaFrame, DoneFrame, TokenUsage, UsageFrame
from lobe.shared.events.usage import USAGE_REPORTED, RequestStatus, UsageRecorded
from lobe.shared.facts import publish_fact
from lobe.shared.openai_errors import ApiError
from lobe.shared.tokens import estimate_prompt_tokens, estimate_tokens

LOST_USAGE_ATTEMPTS = 3  # the client is already answered; a short retry keeps the handler brief


class Answer:
    def __init__(
        self,
        resources: Resources,
        request_id: str,
        caller: Caller,
        body: ChatCompletionRequest,
        received_at: float,
        replay: Replay | None = None,
    ) -> None:
        self.resources = resources
        self.request_id = request_id
        self.caller = caller
        self.body = body
        self.replay = replay
        self.dispatch: Dispatch | Replay = replay or resources.dispatcher.open(request_id, caller, body)
        self.started_at = received_at  # time.monotonic() when the request arrived
        self.output: list[str] = []  # what the client received, for the usage of a lost worker
        self.frames: list[AnswerFrame] = []  # as they came, unpriced: what the response cache keeps
        self.usage: UsageFrame | None = None
        self.done = False  # the answer reached the client complete
        self.usage_recorded_here = False  # by the gateway: a lost worker's, or a cache hit's
        self.end_reason: CancelReason = "abandoned"
        self.task: asyncio.Task[object] | None = None
        self.aborted = False

    @property
    def usage_is_settled(self) -> bool:
        """Whether a usage event settles this request's budget hold: the worker that owns it
        records one whatever happens to the answer, and the gateway does for a lost worker and
        for a cache hit."""
        return self.dispatch.owner is not None or self.usage_recorded_here

    @property
    def tokens_used(self) -> int | None:
        """What the model really used, for the token rate limit; None when the gateway cannot know."""
        if self.replay is not None:
            return 0  # no model ran
        return None if self.usage is None else self.usage.usage.total_tokens

    async def deliver(self, output: Output) -> web.StreamResponse:
        self.task = asyncio.current_task()
        self.resources.answers.add(self)
        try:
            async with contextlib.aclosing(self.dispatch.frames()) as frames:
                async for frame in frames:
                    if isinstance(frame, Idle):
                        await output.flush()
                        continue
                    self.frames.append(frame)
                    if self.replay is None and isinstance(frame, DeltaFrame | DoneFrame) and frame.route:
                        output.headers.update(route_headers(frame.route))  # before the first byte
                    if isinstance(frame, DeltaFrame):
                        if not self.output:
                            TTFT.observe(time.monotonic() - self.started_at)
                        self.output.append(frame.content or frame.reasoning_content or "")
                        await output.delta(frame)
                    elif isinstance(frame, UsageFrame):
                        await output.flush()  # the last chunks must not wait for the price
                        self.usage = await self._priced(frame)
                    else:
                        self.done = True
                        return await output.finish(frame, self.usage)
            raise ApiError(502, "The answer ended without completing.", "stream_truncated")
        except WorkerLost as exc:
            await self._record_lost_usage()
            return await output.fail(exc)
        except ApiError as exc:
            self.end_reason = "timeout" if exc.status == 504 else "abandoned"
            return await output.fail(exc)
        except asyncio.CancelledError:
            if not self.aborted:
                self.end_reason = "client_disconnected"
                raise  # the client left
            # Shutdown past its grace: the client must read an error, not an answer that stops.
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            self.end_reason = "shutdown"
            return await output.fail(
                ApiError(503, "The gateway shut down before the answer completed.", "gateway_shutdown")
            )
        finally:
            self.resources.answers.discard(self)
            output.close()
            if self.dispatch.accepted_at is not None:
                OVERHEAD.observe(self.dispatch.accepted_at - self.started_at)

    def abort(self) -> None:
        """Shutdown: end this answer now, with an error (see deliver)."""
        self.aborted = True
        if self.task is not None:
            self.task.cancel()

    async def _priced(self, frame: UsageFrame) -> UsageFrame:
        """The usage frame with billing's cost for it (off the TTFT path: after the last token)."""
        if frame.cost_usd is not None or not self.resources.settings.billing_enabled:
            return frame
        cost = await self.resources.budget.quote(
            self.request_id,
            frame.provider,
            frame.served_model or self.body.model,
            frame.usage,
            cache_hit=self.replay is not None,
        )
        return frame if cost is None else frame.model_copy(update={"cost_usd": cost})

    async def _record_lost_usage(self) -> None:
        """The worker died mid-answer and never recorded usage: record what the client got."""
        usage = TokenUsage(
            prompt_tokens=estimate_prompt_tokens(self.body),
            completion_tokens=sum(estimate_tokens(text) for text in self.output),
            basis="partial",
        )
        await self._record_usage(usage, "unknown", "unknown", "error", "worker_lost")

    async def record_replayed_usage(self) -> None:
        """A cache hit: no worker records its usage, so the gateway does, marked `cache_hit`
        (billing prices it per its price table: free or at a discount). Once per request."""
        if self.replay is None or self.replay.usage is None or self.usage_recorded_here:
            return
        await self._record_usage(self.replay.usage.usage, self.replay.provider, "cache", "cache_hit", None)

    async def _record_usage(
        self, usage: TokenUsage, provider: str, deployment: str, status: RequestStatus, error: str | None
    ) -> None:
        event = UsageRecorded(
            request_id=self.request_id,
            user_id=self.caller.user_id,
            api_key_id=self.caller.api_key_id,
            provider=provider,
            deployment=deployment,
            model=self.body.model,
            usage=usage,
            status=status,
            error_code=error,
            duration_ms=(time.monotonic() - self.started_at) * 1000,
            stream=self.body.stream,
        )
        # Its own subject: the gateway's NATS user may not publish a worker's usage.recorded.
        self.usage_recorded_here = await publish_fact(
            self.resources.js, USAGE_REPORTED, event, attempts=LOST_USAGE_ATTEMPTS
        )
