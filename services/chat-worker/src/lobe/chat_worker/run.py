"""Runs one chat request: pick a deployment, stream its answer as frames, fall back on failure.

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

from lobe.chat_worker.deployments import Deployment, RoutedModel
from lobe.chat_worker.frames import FrameSink
from lobe.chat_worker.providers.base import (
    Finished,
    Provider,
    ProviderError,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
)
from lobe.shared.events.chat import (
    ChatRequested,
    DeltaFrame,
    DoneFrame,
    ErrorFrame,
    FinishReason,
    TokenBasis,
    TokenUsage,
    ToolCallDelta,
    UsageFrame,
    may_restart,
)
from lobe.shared.events.usage import RequestStatus, UsageRecorded
from lobe.shared.tokens import estimate_prompt_tokens, estimate_tokens

log = logging.getLogger(__name__)

ProviderFor = Callable[[Deployment], Provider]
RecordUsage = Callable[[UsageRecorded], Awaitable[object]]


@dataclass
class Outcome:
    """What the answer so far produced. Fallbacks happen only before the first delta
    (`may_restart`), so an attempt that produced output is the answer's last."""

    deployment: Deployment | None = None
    started: bool = False
    ttft_ms: float | None = None
    output_chars: list[str] = field(default_factory=list)
    usage: TokenUsage | None = None
    finish: FinishReason | None = None
    model: str = ""


class ChatRun:
    def __init__(
        self,
        event: ChatRequested,
        routed: RoutedModel,
        provider_for: ProviderFor,
        sink: FrameSink,
        record_usage: RecordUsage,
    ) -> None:
        self.event = event
        self.record_usage = record_usage
        self.routed = routed
        self.provider_for = provider_for
        self.sink = sink
        self.started_at = time.monotonic()
        self.outcome = Outcome()

    async def execute(self) -> None:
        """Stream the answer, record usage, then send the terminal frames.

        Usage is recorded before the terminal frame, so a worker killed between the two leaves a
        client error but never an unbilled answer.
        """
        try:
            await self._run_with_fallback()
        except ProviderError as exc:
            await self._fail(exc.status, exc.code, exc.message)
            return
        except asyncio.CancelledError:
            # The client went away (or shutdown): bill what was generated, then let the
            # cancellation through. Shielded: a second cancel must not lose the usage event.
            await asyncio.shield(self.record_usage(self._usage_event("cancelled", "cancelled")))
            raise
        except Exception:
            # A bug of ours (a translation, an adapter's reading of a chunk): the provider may
            # have run, so the usage is recorded and the client told now, like any failure.
            log.exception("chat run failed", extra={"request_id": self.event.request_id})
            await self._fail(500, "internal_error", "The chat worker failed to process the answer.")
            return
        await self.record_usage(self._usage_event("ok", None))
        await self._finish()

    async def _fail(self, status: int, code: str, message: str) -> None:
        await self.record_usage(self._usage_event("error", code))
        await self._send_error(status, code, message)

    async def _run_with_fallback(self) -> None:
        deployments = self.routed.deployments
        for index, deployment in enumerate(deployments):
            self.outcome.deployment = deployment
            try:
                await self._stream(self.provider_for(deployment))
            except ProviderError as exc:
                last = index == len(deployments) - 1
                if not exc.retryable or not may_restart(self.outcome.started) or last:
                    raise
                log.warning(
                    "deployment failed, falling back: %s", exc, extra={"request_id": self.event.request_id}
                )
                continue
            return

    async def _stream(self, provider: Provider) -> None:
        # aclosing: a cancel landing mid-send must still close the upstream connection now.
        async with contextlib.aclosing(provider.stream(self.event.body)) as events:
            await self._relay(events, provider.name)

    async def _relay(self, events: AsyncIterator[StreamEvent], provider_name: str) -> None:
        request_id = self.event.request_id
        async for item in events:
            if isinstance(item, TextDelta | ReasoningDelta | ToolCallDelta):
                if not self.outcome.started:
                    self.outcome.started = True
                    self.outcome.ttft_ms = (time.monotonic() - self.started_at) * 1000
                frame = self._delta(item, request_id)
                await self.sink.send(frame)
            elif isinstance(item, Finished):
                self.outcome.finish, self.outcome.model = item.reason, item.model
            else:
                self.outcome.usage = item
        if self.outcome.finish is None:
            raise ProviderError(
                provider_name, 502, "upstream_truncated", "stream ended without a finish", started=True
            )

    def _delta(self, item: TextDelta | ReasoningDelta | ToolCallDelta, request_id: str) -> DeltaFrame:
        seq = self.sink.next_seq()
        if isinstance(item, TextDelta):
            self.outcome.output_chars.append(item.text)
            return DeltaFrame(request_id=request_id, seq=seq, content=item.text)
        if isinstance(item, ReasoningDelta):
            self.outcome.output_chars.append(item.text)
            return DeltaFrame(request_id=request_id, seq=seq, reasoning_content=item.text)
        self.outcome.output_chars.append((item.name or "") + item.arguments)
        return DeltaFrame(request_id=request_id, seq=seq, tool_calls=[item])

    async def _finish(self) -> None:
        request_id = self.event.request_id
        usage = self._token_usage("provider")
        deployment = self.outcome.deployment
        provider = deployment.provider if deployment else "unknown"
        await self.sink.send(
            UsageFrame(request_id=request_id, seq=self.sink.next_seq(), usage=usage, provider=provider)
        )
        await self.sink.send(
            DoneFrame(
                request_id=request_id,
                seq=self.sink.next_seq(),
                finish_reason=self.outcome.finish or "stop",
                model=self.outcome.model or self.event.body.model,
                provider=provider,
            )
        )

    async def _send_error(self, status: int, code: str, message: str) -> None:
        frame = ErrorFrame(
            request_id=self.event.request_id,
            seq=self.sink.next_seq(),
            status=status,
            code=code,
            message=message,
        )
        try:
            await self.sink.send(frame)
        except Exception:  # the connection may be gone; the usage event still goes out
            log.exception("could not send error frame", extra={"request_id": self.event.request_id})

    def _token_usage(self, basis_if_reported: TokenBasis) -> TokenUsage:
        """Provider-reported usage when there is one; otherwise the documented estimate."""
        if self.outcome.usage is not None:
            return self.outcome.usage.model_copy(update={"basis": basis_if_reported})
        estimated_basis: TokenBasis = "estimated" if basis_if_reported == "provider" else basis_if_reported
        return TokenUsage(
            prompt_tokens=estimate_prompt_tokens(self.event.body),
            completion_tokens=sum(estimate_tokens(text) for text in self.outcome.output_chars),
            basis=estimated_basis,
        )

    def _usage_event(self, status: RequestStatus, error_code: str | None) -> UsageRecorded:
        deployment = self.outcome.deployment
        usage = self._token_usage("partial" if status == "cancelled" else "provider")
        return UsageRecorded(
            request_id=self.event.request_id,
            correlation_id=self.event.correlation_id,
            user_id=self.event.caller.user_id,
            api_key_id=self.event.caller.api_key_id,
            provider=deployment.provider if deployment else "none",
            deployment=deployment.name if deployment else "none",
            model=self.event.body.model,
            usage=usage,
            status=status,
            error_code=error_code,
            ttft_ms=self.outcome.ttft_ms,
            duration_ms=(time.monotonic() - self.started_at) * 1000,
            stream=self.event.body.stream,
        )
