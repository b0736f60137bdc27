"""The loop every HTTP adapter shares: send, check the status, feed bytes to a parser, map errors.

An adapter supplies three things: the translated request, a parser for its wire format, and the
reading of its HTTP error bodies. `started` (any output yielded) is tracked here once, so every
error raised after the first token says so and the worker knows a retry must reset the client.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from lobe.chat_worker.deployments import Deployment
from lobe.chat_worker.http.upstream import MAX_ERROR_BODY, TransportError, UpstreamRequest, open_upstream
from lobe.chat_worker.providers.base import Provider, ProviderError, ReasoningDelta, StreamEvent, TextDelta
from lobe.chat_worker.providers.embedding import Embedded, embed_over_http
from lobe.chat_worker.providers.genai_span import traced
from lobe.chat_worker.providers.retry_after import retry_after_s
from lobe.chat_worker.providers.sse import FramingError
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.embeddings_schema import EmbeddingsRequest
from lobe.shared.events.chat import ToolCallDelta
from lobe.shared.media_schema import MediaRequest

MAX_DOCUMENT = 16 * 1024 * 1024
_OUTPUT = (TextDelta, ReasoningDelta, ToolCallDelta)


class StreamParser(ABC):
    """Turns one response body into stream events. One instance per request."""

    @abstractmethod
    def feed(self, data: bytes) -> list[StreamEvent]:
        """Events completed by these bytes; raises ProviderError for in-stream provider errors."""

    @abstractmethod
    def close(self) -> list[StreamEvent]:
        """The body ended cleanly: the final `Finished` (+ `TokenUsage`), or raise if truncated."""

    def document(self, raw: bytes) -> list[StreamEvent]:
        """A whole `application/json` answer (a server that ignored `stream: true`)."""
        return [*self.feed(raw), *self.close()]


class HttpProvider(Provider):
    def __init__(self, deployment: Deployment, session: aiohttp.ClientSession) -> None:
        self.deployment = deployment
        self.session = session
        self.name = deployment.provider

    def upstream_model(self, body: ChatCompletionRequest | EmbeddingsRequest | MediaRequest) -> str:
        return self.deployment.model or body.model

    @abstractmethod
    def request_for(self, body: ChatCompletionRequest) -> UpstreamRequest: ...

    @abstractmethod
    def parser_for(self, body: ChatCompletionRequest) -> StreamParser: ...

    @abstractmethod
    def error_for(self, status: int, raw: bytes) -> ProviderError:
        """The ProviderError for an HTTP error response with this body."""

    async def embed(self, body: EmbeddingsRequest) -> Embedded:
        return await embed_over_http(self, body)

    def embedding_request_for(self, body: EmbeddingsRequest) -> UpstreamRequest:
        """The provider's embeddings request; adapters with an embeddings API override it."""
        raise ProviderError(
            self.name, 404, "model_not_supported", f"{self.name} has no embeddings API", ours=True
        )

    def embedded_from(self, document: Any, body: EmbeddingsRequest) -> Embedded:
        """The vectors, model and usage of the provider's embeddings answer (parsed JSON)."""
        raise NotImplementedError

    def headers(self, own: dict[str, str]) -> dict[str, str]:
        return {"Content-Type": "application/json", **own, **self.deployment.headers}

    def stream(self, body: ChatCompletionRequest) -> AsyncGenerator[StreamEvent, None]:
        return self.stream_over(body, self.request_for, self.parser_for)

    def stream_over(
        self,
        body: ChatCompletionRequest,
        request_for: Callable[[ChatCompletionRequest], UpstreamRequest],
        parser_for: Callable[[ChatCompletionRequest], StreamParser],
    ) -> AsyncGenerator[StreamEvent, None]:
        """The answer over the API `request_for` calls and `parser_for` reads (an adapter with a
        second streaming API, OpenAI's Responses, passes its own)."""
        server = urlsplit(self.deployment.base_url).hostname if self.deployment.base_url else None
        events = self._events(body, request_for, parser_for)
        return traced(events, self.name, self.upstream_model(body), body, server)

    async def _events(
        self,
        body: ChatCompletionRequest,
        request_for: Callable[[ChatCompletionRequest], UpstreamRequest],
        parser_for: Callable[[ChatCompletionRequest], StreamParser],
    ) -> AsyncGenerator[StreamEvent, None]:
        request = request_for(body)
        parser = parser_for(body)
        started = False
        try:
            async with open_upstream(self.session, request, self.deployment.timeouts) as upstream:
                if upstream.status >= 400:
                    error = self.error_for(upstream.status, await upstream.read_all(MAX_ERROR_BODY))
                    raise dataclasses.replace(error, retry_after_s=retry_after_s(upstream.response.headers))
                if upstream.content_type == "application/json":
                    for event in parser.document(await upstream.read_all(MAX_DOCUMENT)):
                        yield event
                    return
                while data := await upstream.read():
                    for event in parser.feed(data):
                        if not started and isinstance(event, _OUTPUT):
                            started = True
                        yield event
                for event in parser.close():
                    yield event
        except TransportError as exc:
            # Nothing reached the client yet: another attempt is free. After that it is not.
            raise ProviderError(self.name, exc.status, exc.code, exc.message, not started, started) from exc
        except FramingError as exc:
            raise ProviderError(self.name, 502, "upstream_malformed", str(exc), not started, started) from exc
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            # Well-formed JSON of an unexpected shape (a field missing, a string where a list was
            # promised): the provider's answer cannot be read, which is its failure, not the client's.
            message = f"unreadable {self.name} stream: {type(exc).__name__}: {exc}"
            raise ProviderError(self.name, 502, "upstream_malformed", message, not started, started) from exc
        except ProviderError as exc:
            if started and not exc.started:
                raise dataclasses.replace(exc, started=True) from exc
            raise
