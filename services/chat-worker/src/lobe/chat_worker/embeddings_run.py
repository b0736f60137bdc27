"""Runs one embeddings request: its attempts (lobe.chat_worker.routing.attempts, the chat walk:
retries, fallbacks, breakers, limits) pick the deployment, whose adapter embeds the inputs.

Exactly one usage event per request, kind `embedding`, recorded before the reply is sent (a
worker killed between the two leaves a gateway timeout, never an unbilled answer). The usage is
the provider's count, or the documented estimate when it reports none (Gemini).
"""

from __future__ import annotations

import asyncio
import logging
import time

from lobe.chat_worker.providers.base import ProviderError
from lobe.chat_worker.providers.embedding import Embedded, float32_base64
from lobe.chat_worker.providers.errors import for_client
from lobe.chat_worker.routing.attempts import Attempt, AttemptLoop
from lobe.chat_worker.run import RunContext
from lobe.shared.embeddings_schema import EmbeddingsRequest
from lobe.shared.events.chat import TokenUsage
from lobe.shared.events.embeddings import EmbeddingsAnswer, EmbeddingsFailure, EmbeddingsRequested
from lobe.shared.events.usage import RequestStatus, usage_event
from lobe.shared.tokens import estimate_tokens

log = logging.getLogger(__name__)
# What the reply carries besides the vectors (ids, model, usage, route), well above its real size.
REPLY_OVERHEAD_BYTES = 4096


def estimated_usage(body: EmbeddingsRequest) -> TokenUsage:
    return TokenUsage(
        prompt_tokens=sum(estimate_tokens(text) for text in body.texts),
        completion_tokens=0,
        basis="estimated",
    )


class EmbeddingsRun:
    def __init__(self, event: EmbeddingsRequested, context: RunContext, max_reply_bytes: int) -> None:
        self.event = event
        self.provider_for = context.provider_for
        self.record_usage = context.record_usage
        self.max_reply_bytes = max_reply_bytes
        self.started_at = time.monotonic()
        self.embedded: Embedded | None = None
        self.attempts: AttemptLoop[EmbeddingsRequest] = context.attempts(
            event.body,
            event.request_id,
            self.started_at + event.deadline_ms / 1000,
            prompt_tokens=estimated_usage(event.body).prompt_tokens,
            tokens_used=lambda: self._usage().prompt_tokens,
        )

    async def execute(self) -> EmbeddingsAnswer:
        try:
            await self.attempts.run(self._attempt)
        except ProviderError as exc:
            log.warning("embeddings request failed: %s", exc, extra={"request_id": self.event.request_id})
            code, message = for_client(exc)
            await self._record("error", exc.code)
            return self._failure(exc.status, code, message, exc.retry_after_s)
        except asyncio.CancelledError:
            # Shutdown mid-call: whatever the provider did is recorded, then the cancel goes on.
            await asyncio.shield(self._record("cancelled", "cancelled"))
            raise
        except Exception:
            log.exception("embeddings run failed", extra={"request_id": self.event.request_id})
            await self._record("error", "internal_error")
            return self._failure(500, "internal_error", "The chat worker failed to process the answer.")
        assert self.embedded is not None
        vectors = [float32_base64(vector) for vector in self.embedded.vectors]
        await self._record("ok", None)
        size = sum(len(v) for v in vectors) + REPLY_OVERHEAD_BYTES
        if size > self.max_reply_bytes:
            # The provider answered (and is paid: the usage is recorded), but one bus message
            # cannot carry the vectors back. The client learns how to split the batch.
            message = (
                f"The {len(vectors)} embeddings take about {size} bytes, more than one message of "
                f"this gateway's bus carries ({self.max_reply_bytes}); send fewer inputs per request."
            )
            return self._failure(413, "embeddings_too_large", message)
        attempt = self.attempts.last
        return EmbeddingsAnswer(
            request_id=self.event.request_id,
            vectors=vectors,
            model=self.embedded.model,
            usage=self._usage(),
            served_model=self._served_model(attempt),
            route=attempt.route if attempt else None,
        )

    async def _attempt(self, attempt: Attempt[EmbeddingsRequest]) -> None:
        self.embedded = None
        self.embedded = await self.provider_for(attempt.deployment).embed(attempt.body)

    def _usage(self) -> TokenUsage:
        embedded = self.embedded
        if embedded is not None and embedded.usage is not None:
            return embedded.usage
        if embedded is None:  # no answer: the provider counts nothing we can know of
            return TokenUsage(prompt_tokens=0, completion_tokens=0, basis="estimated")
        return estimated_usage(self.event.body)

    @staticmethod
    def _served_model(attempt: Attempt[EmbeddingsRequest] | None) -> str | None:
        return (attempt.deployment.model or attempt.model.name) if attempt else None

    def _failure(
        self, status: int, code: str, message: str, retry_after_s: float | None = None
    ) -> EmbeddingsAnswer:
        attempt = self.attempts.last
        return EmbeddingsAnswer(
            request_id=self.event.request_id,
            route=attempt.route if attempt else None,
            error=EmbeddingsFailure(status=status, code=code, message=message, retry_after_s=retry_after_s),
        )

    async def _record(self, status: RequestStatus, error_code: str | None) -> None:
        attempt = self.attempts.last
        deployment = attempt.deployment if attempt else None
        await self.record_usage(
            usage_event(
                self.event.request_id,
                self.event.caller,
                self.event.body,
                self.started_at,
                provider=deployment.provider if deployment else "none",
                deployment=deployment.name if deployment else "none",
                usage=self._usage(),
                status=status,
                error_code=error_code,
                correlation_id=self.event.correlation_id,
                attempts=self.attempts.attempts,
                served_model=self._served_model(attempt),
                lease=self.event.lease,
            )
        )
