"""The built-in `mock` model: a deterministic answer derived from the input, no network.

Used by the walking skeleton, by `lobe dev` out of the box and by load tests of the bus, so it
behaves like a real provider: several chunks, usage reported, optional pacing between chunks.
It embeds too: each input's vector is seeded by a hash of the text (same text, same vector),
unit length like OpenAI's, `dimensions` long (MOCK_DIMENSIONS by default). Its images, speech and
transcripts: lobe.chat_worker.providers.mock_media.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import struct
from collections.abc import AsyncGenerator, AsyncIterator

from lobe.chat_worker.providers.base import Finished, Provider, StreamEvent, TextDelta
from lobe.chat_worker.providers.embedding import Embedded
from lobe.chat_worker.providers.genai_span import traced
from lobe.chat_worker.providers.media import GeneratedImages, Transcribed
from lobe.chat_worker.providers.mock_media import mock_audio, mock_images, mock_speech, mock_transcription
from lobe.shared.chat_schema import ChatCompletionRequest, TextPart
from lobe.shared.embeddings_schema import EmbeddingsRequest
from lobe.shared.events.chat import FinishReason, TokenUsage
from lobe.shared.media_schema import ImagesRequest, SpeechRequest, TranscriptionRequest
from lobe.shared.token_ceiling import prompt_token_ceiling

MOCK_MODEL = "mock"
DEFAULT_MAX_WORDS = 64
MOCK_DIMENSIONS = 16


def mock_vector(text: str, dimensions: int) -> list[float]:
    """A unit vector seeded by the text's SHA-256 (counter mode: any length), float32-exact."""
    raw = b"".join(
        hashlib.sha256(f"{block}:{text}".encode()).digest() for block in range(-(-dimensions * 4 // 32))
    )
    values = [v / 2**31 for v in struct.unpack(f"<{dimensions}i", raw[: dimensions * 4])]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    # Rounded through float32, as a real provider's values are: what the base64 form carries exactly.
    return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *(v / norm for v in values))))


def last_user_text(body: ChatCompletionRequest) -> str:
    for message in reversed(body.messages):
        if message.role == "user":
            content = message.content
            if isinstance(content, str):
                return content
            return " ".join(part.text for part in content if isinstance(part, TextPart))
    return ""


def mock_answer(body: ChatCompletionRequest) -> list[str]:
    """The reply's chunks: an echo of the last user message and a digest of the whole input.

    Deterministic (same input, same answer) so tests can assert it; the digest makes two
    different conversations give different answers.
    """
    digest = hashlib.sha256(body.model_dump_json(include={"messages"}).encode()).hexdigest()[:8]
    words = f"Mock reply to: {last_user_text(body)} [{digest}]".split()
    return [word if i == 0 else f" {word}" for i, word in enumerate(words)]


class MockProvider(Provider):
    name = "mock"

    def __init__(self, chunk_delay_s: float = 0.0) -> None:
        self.chunk_delay_s = chunk_delay_s

    def stream(self, body: ChatCompletionRequest) -> AsyncGenerator[StreamEvent, None]:
        return traced(self._events(body), self.name, MOCK_MODEL, body)

    async def _events(self, body: ChatCompletionRequest) -> AsyncGenerator[StreamEvent, None]:
        chunks = mock_answer(body)
        limit = body.output_token_limit
        finish: FinishReason = "stop"
        if limit is not None and limit < len(chunks):
            chunks, finish = chunks[:limit], "length"
        for chunk in chunks:
            if self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
            yield TextDelta(chunk)
        yield Finished(reason=finish, model=MOCK_MODEL)
        # One chunk is one token of the mock's own vocabulary, so `max_tokens` caps completion
        # tokens exactly as it does upstream; its prompt counts what the hold's ceiling counts, so
        # a request's cost equals its hold to the token (the budget race test relies on it).
        yield TokenUsage(
            prompt_tokens=prompt_token_ceiling(body), completion_tokens=len(chunks), basis="provider"
        )

    async def embed(self, body: EmbeddingsRequest) -> Embedded:
        dimensions = body.dimensions or MOCK_DIMENSIONS
        return Embedded(
            vectors=[mock_vector(text, dimensions) for text in body.texts],
            model=MOCK_MODEL,
            # The hold's ceiling, as for chat: a request's cost equals its hold to the token.
            usage=TokenUsage(prompt_tokens=prompt_token_ceiling(body), completion_tokens=0),
        )

    async def generate_images(self, body: ImagesRequest) -> GeneratedImages:
        return mock_images(body)

    def speak(self, body: SpeechRequest) -> AsyncIterator[bytes]:
        mock_audio(body)  # an unspoken format fails here, before any byte, as a provider's 400 would
        return mock_speech(body)

    async def transcribe(self, body: TranscriptionRequest, audio: AsyncIterator[bytes]) -> Transcribed:
        return await mock_transcription(audio)
