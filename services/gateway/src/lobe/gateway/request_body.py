"""The chat request body: read, parsed and validated, or a 400 in OpenAI's error format.

Strict JSON first (lobe.shared.json_body: UTF-8, no NaN, no lone surrogate, 64 levels, 64-bit
integers), then the OpenAI request model within the gateway's own bounds (`EdgeRequest`), so that
every value admitted can be encoded, priced and forwarded by each service downstream.

Validated strictly, as OpenAI does: JSON's own types only, no coercion (`"stream": "yes"`, `"1"`
for a number or `1` for a boolean are 400s, not guesses); an integer still stands for a float.
"""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, Field, ValidationError

from lobe.gateway.json_request import read_json_object
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.embeddings_schema import EmbeddingsRequest
from lobe.shared.media_schema import ImagesRequest, SpeechRequest
from lobe.shared.openai_errors import invalid_request

# Far above any model's output limit (today ~128k tokens); past it a request is a mistake, and
# its worst case would be a budget hold no ledger column can store.
MAX_OUTPUT_TOKENS = 1_000_000
Parsed = TypeVar("Parsed", bound=BaseModel)


class EdgeRequest(ChatCompletionRequest):
    """The request the gateway admits (its OpenAPI schema): ChatCompletionRequest, bounded."""

    max_tokens: int | None = Field(default=None, ge=1, le=MAX_OUTPUT_TOKENS)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_OUTPUT_TOKENS)


async def parse_body(request: web.Request) -> ChatCompletionRequest:
    data = await read_json_object(request)
    try:
        return EdgeRequest.model_validate(data, strict=True)  # strict reaches every nested model
    except ValidationError as exc:
        raise invalid_request(exc) from None


async def parse_embeddings_body(request: web.Request) -> EmbeddingsRequest:
    """POST /v1/embeddings: the same strict JSON and the same strict validation."""
    return await _strict(request, EmbeddingsRequest)


async def parse_images_body(request: web.Request) -> ImagesRequest:
    return await _strict(request, ImagesRequest)


async def parse_speech_body(request: web.Request) -> SpeechRequest:
    return await _strict(request, SpeechRequest)


async def _strict(request: web.Request, model: type[Parsed]) -> Parsed:
    data = await read_json_object(request)
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        raise invalid_request(exc) from None
