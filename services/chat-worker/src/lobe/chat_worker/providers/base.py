"""What every provider adapter yields and raises, whatever its wire format.

An adapter turns an OpenAI-shaped request into the provider's request, and the provider's
stream back into `StreamEvent`s. The worker's frame loop only ever sees these types.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.chat import ChatEndpoint, FinishReason, TokenUsage, ToolCallDelta

if TYPE_CHECKING:
    from lobe.chat_worker.providers.embedding import Embedded
    from lobe.chat_worker.providers.media import GeneratedImages, Transcribed
    from lobe.shared.embeddings_schema import EmbeddingsRequest
    from lobe.shared.media_schema import ImagesRequest, SpeechRequest, TranscriptionRequest


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Finished:
    """The provider ended the answer. `model` is the model the provider says answered."""

    reason: FinishReason
    model: str


StreamEvent = TextDelta | ReasoningDelta | ToolCallDelta | Finished | TokenUsage


@dataclass
class ProviderError(Exception):
    """The provider failed. `status` is the HTTP status the client should see.

    `retryable` says whether another attempt (same or another deployment) may succeed;
    `started` says whether any output had already been yielded (then the answer cannot restart);
    `retry_after_s` is the wait the provider asked for (its Retry-After), when it gave one;
    `ours`: the message is the worker's own words about the client's request, which the client may
    read; any other message quotes the provider or the network and stays in the logs
    (lobe.chat_worker.providers.errors.for_client).
    """

    provider: str
    status: int
    code: str
    message: str
    retryable: bool = False
    started: bool = False
    retry_after_s: float | None = None
    ours: bool = False

    def __str__(self) -> str:
        return f"{self.provider}: {self.status} {self.code}: {self.message}"


class Provider(ABC):
    """One configured upstream (a deployment) speaking one wire format."""

    name: str

    @abstractmethod
    def stream(self, body: ChatCompletionRequest) -> AsyncGenerator[StreamEvent, None]:
        """Yield the answer as events; end with `Finished` (and `TokenUsage` when known).

        Raises ProviderError for upstream failures. Cancelling the iterating task must close
        the upstream connection at once (the client went away).
        """

    def stream_for(
        self, body: ChatCompletionRequest, endpoint: ChatEndpoint
    ) -> AsyncGenerator[StreamEvent, None]:
        """`stream`, for a request that came in on `endpoint`: every provider answers a Responses
        request through its chat API, but one configured for its native Responses API (OpenAI's,
        `responses: native`) overrides this."""
        return self.stream(body)

    async def embed(self, body: EmbeddingsRequest) -> Embedded:
        """One vector per input (lobe.chat_worker.providers.embedding). Raises ProviderError;
        a provider without an embeddings API never gets here (the models file is checked)."""
        raise ProviderError(
            self.name, 404, "model_not_supported", f"{self.name} has no embeddings API", ours=True
        )

    async def generate_images(self, body: ImagesRequest) -> GeneratedImages:
        """Images (lobe.chat_worker.providers.media). Raises ProviderError, as `embed` does."""
        raise self._no_api("images")

    def speak(self, body: SpeechRequest) -> AsyncIterator[bytes]:
        """The audio's bytes as the provider sends them; closing it closes the connection."""
        raise self._no_api("speech")

    async def transcribe(self, body: TranscriptionRequest, audio: AsyncIterator[bytes]) -> Transcribed:
        """The transcript of `audio` (read once, as it streams from the object store)."""
        raise self._no_api("transcription")

    def _no_api(self, endpoint: str) -> ProviderError:
        return ProviderError(
            self.name, 404, "model_not_supported", f"{self.name} has no {endpoint} API", ours=True
        )

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release pooled connections."""
