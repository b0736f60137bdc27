"""Runs one chat request: its attempts (lobe.chat_worker.routing.attempts) pick the deployments,
this streams the answer of the one that answers as frames.

Exactly one usage event is published per request, whatever the outcome (done, error, cancel,
or a bug of ours: then the client still gets an error frame at once, never a silence that
makes the gateway re-dispatch and call the provider a second time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import msgspec

from lobe.chat_worker.deployments import Deployment, ModelCatalog, RoutedModel
from lobe.chat_worker.frames import FrameSink
from lobe.chat_worker.providers.base import (
    Finished,
    Provider,
    ProviderError,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
)
from lobe.chat_worker.providers.errors import for_client
from lobe.chat_worker.routing.attempts import Attempt, AttemptLoop, Body
from lobe.chat_worker.routing.router import Router
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.chat import (
    ChatRequested,
    DoneFrame,
    ErrorFrame,
    FinishReason,
    TokenBasis,
    TokenUsage,
    ToolCallDelta,
    UsageFrame,
)
from lobe.shared.events.chat_wire import WireDelta, WireRoute, WireToolCall
from lobe.shared.events.usage import RequestStatus, UsageRecorded, chat_usage_kind, usage_event
from lobe.shared.tokens import estimate_prompt_tokens, estimate_tokens

log = logging.getLogger(__name__)

ProviderFor = Callable[[Deployment], Provider]
RecordUsage = Callable[[UsageRecorded], Awaitable[object]]


@dataclass(frozen=True)
class RunContext:
    """What a run of any endpoint takes from its worker: the routing the request keeps (whatever a
    reload does meanwhile), the router, the providers and the usage recorder."""

    catalog: ModelCatalog
    routed: RoutedModel
    router: Router
    provider_for: ProviderFor
    # Publishes a run's one usage event; a cancel of the awaiting run does not stop the publish.
    record_usage: RecordUsage

    def attempts(
        self,
        body: Body,
        request_id: str,
        deadline: float,
        *,
        prompt_tokens: int,
        tokens_used: Callable[[], int],
    ) -> AttemptLoop[Body]:
        """The request's walk over deployments and fallbacks; `deadline` on time.monotonic()."""
        return AttemptLoop(
            self.router,
            self.catalog,
            self.routed,
            body,
            request_id,
            deadline=deadline,
            prompt_tokens=prompt_tokens,
            tokens_used=tokens_used,
        )


@dataclass
class Outcome:
    """What the answer so far produced. Fallbacks happen only before the first delta
    (`may_restart`), so an attempt that produced output is the answer's last."""

    attempt: Attempt[ChatCompletionRequest] | None = None
    started: bool = False
    ttft_ms: float | None = None
    output_chars: list[str] = field(default_factory=list)
    usage: TokenUsage | None = None
    finish: FinishReason | None = None
    model: str = ""

    @property
    def deployment(self) -> Deployment | None:
        return self.attempt.deployment if self.attempt else None

    @property
    def served_model(self) -> str | None:
        """What the provider was asked for: the deployment's upstream model, else the public name
        of the model it serves (the requested one, or a fallback)."""
        attempt = self.attempt
        return (attempt.deployment.model or attempt.model.name) if attempt else None


class ChatRun:
    def __init__(self, event: ChatRequested, context: RunContext, sink: FrameSink) -> None:
        self.event = event
        self.record_usage = context.record_usage
        self.provider_for = context.provider_for
        self.sink = sink
        self.started_at = time.monotonic()
        self.outcome = Outcome()
        self.attempts = context.attempts(
            event.body,
            event.request_id,
            self.started_at + event.deadline_ms / 1000,
            prompt_tokens=estimate_prompt_tokens(event.body),
            tokens_used=lambda: self._token_usage("provider").total_tokens,
        )

    async def execute(self) -> None:
        """Stream the answer, record usage, then send the terminal frames.

        Usage is recorded before the terminal frame, so a worker killed between the two leaves a
        client error but never an unbilled answer.
        """
        try:
            await self.attempts.run(self._attempt)
        except ProviderError as exc:
            # The provider's words are for the operators (see providers/errors.py).
            deployment = self.outcome.deployment
            log.warning(
                "chat request failed: %s",
                exc,
                extra={
                    "request_id": self.event.request_id,
                    "deployment": deployment.name if deployment else None,
                },
            )
            code, message = for_client(exc)
            await self._fail(exc.status, code, message, exc.retry_after_s, usage_code=exc.code)
            return
        except asyncio.CancelledError:
            # The client went away (or shutdown): bill what was generated, then let the
            # cancellation through (record_usage outlives a second cancel: RunContext).
            await self.record_usage(self._usage_event("cancelled", "cancelled"))
            raise
        except Exception:
            # A bug of ours (a translation, an adapter's reading of a chunk): the provider may
            # have run, so the usage is recorded and the client told now, like any failure.
            log.exception("chat run failed", extra={"request_id": self.event.request_id})
            await self._fail(500, "internal_error", "The chat worker failed to process the answer.")
            return
        await self.record_usage(self._usage_event("ok", None))
        await self._finish()

    async def _fail(
        self,
        status: int,
        code: str,
        message: str,
        retry_after_s: float | None = None,
        usage_code: str | None = None,
    ) -> None:
        # The ledger keeps the provider's own code (`usage_code`): what an operator looks into.
        await self.record_usage(self._usage_event("error", usage_code or code))
        await self._send_error(status, code, message, retry_after_s)

    async def _attempt(self, attempt: Attempt[ChatCompletionRequest]) -> None:
        # A failed attempt ended before its first delta: nothing of it belongs to this one.
        self.outcome = Outcome(attempt=attempt)
        provider = self.provider_for(attempt.deployment)
        # aclosing: a cancel landing mid-send must still close the upstream connection now.
        async with contextlib.aclosing(provider.stream_for(attempt.body, self.event.endpoint)) as events:
            await self._relay(events, provider.name, attempt)

    async def _relay(
        self, events: AsyncIterator[StreamEvent], provider_name: str, attempt: Attempt[ChatCompletionRequest]
    ) -> None:
        request_id = self.event.request_id
        async for item in events:
            if isinstance(item, TextDelta | ReasoningDelta | ToolCallDelta):
                frame = self._delta(item, request_id)
                if not self.outcome.started:
                    # The first delta says who answers: the gateway's headers go out with it.
                    self.outcome.started = attempt.started = True
                    self.outcome.ttft_ms = (time.monotonic() - self.started_at) * 1000
                    frame = msgspec.structs.replace(frame, route=WireRoute.of(attempt.route))
                    await self.attempts.router.first_token(attempt.gate, request_id)
                await self.sink.send(frame)
            elif isinstance(item, Finished):
                self.outcome.finish, self.outcome.model = item.reason, item.model
            else:
                self.outcome.usage = item
        if self.outcome.finish is None:
            raise ProviderError(
                provider_name, 502, "upstream_truncated", "stream ended without a finish", started=True
            )

    def _delta(self, item: TextDelta | ReasoningDelta | ToolCallDelta, request_id: str) -> WireDelta:
        # A msgspec struct, not the pydantic DeltaFrame: built once per token (chat_wire).
        seq = self.sink.next_seq()
        if isinstance(item, TextDelta):
            self.outcome.output_chars.append(item.text)
            return WireDelta(request_id=request_id, seq=seq, content=item.text)
        if isinstance(item, ReasoningDelta):
            self.outcome.output_chars.append(item.text)
            return WireDelta(request_id=request_id, seq=seq, reasoning_content=item.text)
        self.outcome.output_chars.append((item.name or "") + item.arguments)
        return WireDelta(request_id=request_id, seq=seq, tool_calls=[WireToolCall.of(item)])

    async def _finish(self) -> None:
        request_id = self.event.request_id
        usage = self._token_usage("provider")
        deployment = self.outcome.deployment
        provider = deployment.provider if deployment else "unknown"
        route = self.outcome.attempt.route if self.outcome.attempt else None
        await self.sink.send(
            UsageFrame(
                request_id=request_id,
                seq=self.sink.next_seq(),
                usage=usage,
                provider=provider,
                served_model=self.outcome.served_model,
            )
        )
        await self.sink.send(
            DoneFrame(
                request_id=request_id,
                seq=self.sink.next_seq(),
                finish_reason=self.outcome.finish or "stop",
                model=self.outcome.model or self.event.body.model,
                provider=provider,
                route=route,
            )
        )

    async def _send_error(
        self, status: int, code: str, message: str, retry_after_s: float | None = None
    ) -> None:
        frame = ErrorFrame(
            request_id=self.event.request_id,
            seq=self.sink.next_seq(),
            status=status,
            code=code,
            message=message,
            route=self.outcome.attempt.route if self.outcome.attempt else None,
            retry_after_s=retry_after_s,
        )
        try:
            await self.sink.send(frame)
        except Exception:  # the connection may be gone; the usage event still goes out
            log.exception("could not send error frame", extra={"request_id": self.event.request_id})

    def _token_usage(self, basis_if_reported: TokenBasis) -> TokenUsage:
        """Provider-reported usage when there is one; otherwise the documented estimate. A
        partial answer stays `partial` either way; `source` says which it was."""
        if self.outcome.usage is not None:
            return self.outcome.usage.model_copy(update={"basis": basis_if_reported, "source": "provider"})
        estimated_basis: TokenBasis = "estimated" if basis_if_reported == "provider" else basis_if_reported
        return TokenUsage(
            prompt_tokens=estimate_prompt_tokens(self.event.body),
            completion_tokens=sum(estimate_tokens(text) for text in self.outcome.output_chars),
            basis=estimated_basis,
            source="estimated",
        )

    def _usage_event(self, status: RequestStatus, error_code: str | None) -> UsageRecorded:
        deployment = self.outcome.deployment
        usage = self._token_usage("partial" if status == "cancelled" else "provider")
        return usage_event(
            self.event.request_id,
            self.event.caller,
            self.event.body,
            self.started_at,
            provider=deployment.provider if deployment else "none",
            deployment=deployment.name if deployment else "none",
            usage=usage,
            status=status,
            error_code=error_code,
            correlation_id=self.event.correlation_id,
            ttft_ms=self.outcome.ttft_ms,
            attempts=self.attempts.attempts,
            served_model=self.outcome.served_model,
            disconnect_billing=deployment.disconnect_billing
            if deployment and status == "cancelled"
            else None,
            kind=chat_usage_kind(self.event.endpoint),
            lease=self.event.lease,
        )
