"""One request's walk through its deployments: retries of one deployment, fallbacks to the next,
then to the model's fallback models, or straight to its larger-context model when the prompt did
not fit. All of it before the first token only (`may_restart`); after it, a failure is the answer's.
The same walk for a chat request and an embeddings request (`Body`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from lobe.chat_worker.deployments import Deployment, ModelCatalog, RoutedModel
from lobe.chat_worker.providers.base import ProviderError
from lobe.chat_worker.routing.failures import classify, counts_against_deployment, retry_delay
from lobe.chat_worker.routing.router import Gate, Router, Skip
from lobe.chat_worker.routing.strategies import Demand
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.embeddings_schema import EmbeddingsRequest
from lobe.shared.events.chat import Route, may_restart
from lobe.shared.media_schema import ImagesRequest, SpeechRequest, TranscriptionRequest

log = logging.getLogger(__name__)

# Output assumed by the cost estimate when the client sets no cap (routing only, not billing).
ASSUMED_OUTPUT_TOKENS = 512

Next = Literal["done", "next", "context"]
Body = TypeVar(
    "Body", ChatCompletionRequest, EmbeddingsRequest, ImagesRequest, SpeechRequest, TranscriptionRequest
)


@dataclass
class Attempt(Generic[Body]):
    """One provider call, numbered within its request."""

    number: int
    model: RoutedModel  # the public model it serves (the requested one, or a fallback)
    deployment: Deployment
    body: Body  # the request as that model's deployments get it
    gate: Gate
    started: bool = False  # output reached the client: the answer can no longer restart

    @property
    def route(self) -> Route:
        deployment = self.deployment
        return Route(
            deployment=deployment.name,
            provider=deployment.provider,
            model=self.model.name,
            attempts=self.number,
        )


class AttemptLoop(Generic[Body]):
    def __init__(
        self,
        router: Router,
        catalog: ModelCatalog,
        routed: RoutedModel,
        body: Body,
        request_id: str,
        deadline: float,
        prompt_tokens: int,
        tokens_used: Callable[[], int],
    ) -> None:
        self.router = router
        self.catalog = catalog
        self.routed = routed
        self.body: Body = body
        self.request_id = request_id
        self.deadline = deadline  # monotonic
        self.prompt_tokens = prompt_tokens
        self.tokens_used = tokens_used
        self.attempts = 0
        self.last: Attempt[Body] | None = None
        self.last_error: ProviderError | None = None
        self.skips: list[Skip] = []

    async def run(self, call: Callable[[Attempt[Body]], Awaitable[None]]) -> None:
        """Until one attempt answers; raises the last ProviderError (or why none was tried)."""
        queue = deque([self.routed])
        visited: set[str] = set()
        while queue:
            model = queue.popleft()
            if model.name in visited:
                continue
            visited.add(model.name)
            body: Body = (
                self.body if model is self.routed else self.body.model_copy(update={"model": model.name})
            )
            limit = body.output_token_limit  # an embedding's is 0: it generates nothing
            demand = Demand(self.prompt_tokens, ASSUMED_OUTPUT_TOKENS if limit is None else limit)
            for deployment in self.router.rank(model, demand):
                step = await self._on(model, deployment, body, call)
                if step == "done":
                    return
                if step == "context":
                    larger = self.catalog.get(model.context_fallback) if model.context_fallback else None
                    if larger is None:
                        raise self.last_error or self._exhausted()
                    queue = deque([larger])
                    break
            else:
                queue.extend(m for name in model.fallbacks if (m := self.catalog.get(name)) is not None)
        raise self.last_error or self._exhausted()

    async def _on(
        self,
        model: RoutedModel,
        deployment: Deployment,
        body: Body,
        call: Callable[[Attempt[Body]], Awaitable[None]],
    ) -> Next:
        """Attempts on one deployment: the first, then retries while the failure is transient."""
        retries = 0
        while True:
            gate = await self.router.gate(deployment, self.request_id, self.prompt_tokens)
            if isinstance(gate, Skip):
                self.skips.append(gate)
                return "next"
            self.attempts += 1
            attempt = self.last = Attempt(self.attempts, model, deployment, body, gate)
            try:
                await call(attempt)
            except ProviderError as exc:
                kind = classify(exc)
                outcome = "failed" if counts_against_deployment(kind) else "rejected"
                await self.router.ended(gate, self.request_id, outcome, 0, exc.code)
                if not may_restart(attempt.started or exc.started) or kind == "request":
                    raise
                self.last_error = exc
                if kind == "context":
                    self._fell_back(deployment, "context_window", exc)
                    return "context"
                if kind == "transient" and retries < model.retry.max_retries:
                    delay = self._retry_delay(model, retries + 1, exc)
                    if delay is not None:
                        retries += 1
                        self.router.metrics.retries.labels(deployment=deployment.name).inc()
                        log.info(
                            "retrying %s in %.2fs: %s",
                            deployment.name,
                            delay,
                            exc,
                            extra={"request_id": self.request_id},
                        )
                        await asyncio.sleep(delay)
                        continue
                self._fell_back(deployment, "error", exc)
                return "next"
            except asyncio.CancelledError:
                await asyncio.shield(self.router.ended(gate, self.request_id, "cancelled", None))
                raise
            except Exception:
                await self.router.ended(gate, self.request_id, "error", None)
                raise
            await self.router.ended(gate, self.request_id, "ok", self.tokens_used(), answered=attempt.started)
            return "done"

    def _retry_delay(self, model: RoutedModel, retry: int, exc: ProviderError) -> float | None:
        """The wait before this retry, or None when it would pass the request's deadline or the
        provider asks for longer than the model's `max_wait_s` (then the next deployment goes now)."""
        delay = retry_delay(model.retry, retry, exc.retry_after_s, self.router.rng)
        if exc.retry_after_s is not None and exc.retry_after_s > model.retry.max_wait_s:
            return None
        return delay if time.monotonic() + delay < self.deadline else None

    def _fell_back(self, deployment: Deployment, reason: str, exc: ProviderError) -> None:
        self.router.metrics.fallbacks.labels(deployment=deployment.name, reason=reason).inc()
        log.warning(
            "deployment %s failed, moving on: %s", deployment.name, exc, extra={"request_id": self.request_id}
        )

    def _exhausted(self) -> ProviderError:
        """No deployment was called: each was at its limit or had its breaker open."""
        waits = [s.retry_after_s for s in self.skips if s.retry_after_s is not None]
        retry_after = round(min(waits), 3) if waits else None
        name = self.routed.name
        if self.skips and all(s.reason != "breaker_open" for s in self.skips):
            message = f"Every deployment of '{name}' is at its rate limit; retry shortly."
            return ProviderError(
                "routing", 429, "deployment_rate_limited", message, True, retry_after_s=retry_after, ours=True
            )
        message = f"No deployment of '{name}' is available right now (circuit breakers open); retry shortly."
        return ProviderError(
            "routing", 503, "no_deployment_available", message, True, retry_after_s=retry_after, ours=True
        )
