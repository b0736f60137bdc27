"""OpenAI Chat Completions, OpenAI-compatible servers (vLLM, DeepSeek, Groq, OpenRouter, Mistral,
Ollama /v1) and Azure OpenAI: one request shape, three URL/auth schemes.

Upstream is always asked to stream with `include_usage`, even for a non-streaming client: the
gateway assembles the answer, and only a stream gives time to first token and partial usage on
cancel. `metadata` stays with us (it labels our usage records) and is not forwarded.
Images, speech and transcription: `openai` and `openai_compatible` (lobe.chat_worker.providers.openai_media).
A Responses request to a deployment marked `responses: native` goes to the upstream's own
`/responses` (lobe.chat_worker.providers.openai_responses).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Literal

import aiohttp

from lobe.chat_worker.http.upstream import UpstreamRequest
from lobe.chat_worker.providers.base import ProviderError, StreamEvent
from lobe.chat_worker.providers.embedding import Embedded
from lobe.chat_worker.providers.errors import body_excerpt, error_document, upstream_error
from lobe.chat_worker.providers.http_base import HttpProvider, StreamParser
from lobe.chat_worker.providers.media import (
    MAX_MEDIA_DOCUMENT,
    MAX_TRANSCRIPT_DOCUMENT,
    GeneratedImages,
    Transcribed,
    audio_over_http,
    images_from,
    json_over_http,
    transcribed_from,
)
from lobe.chat_worker.providers.openai_embeddings import openai_embedded, openai_embeddings_body
from lobe.chat_worker.providers.openai_media import images_body, speech_body, transcription_form
from lobe.chat_worker.providers.openai_responses import ResponsesStreamParser, responses_body
from lobe.chat_worker.providers.openai_stream import OpenAIStreamParser, inline_error
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.embeddings_schema import EmbeddingsRequest
from lobe.shared.events.chat import ChatEndpoint
from lobe.shared.media_schema import ImagesRequest, SpeechRequest, TranscriptionRequest

OPENAI_BASE_URL = "https://api.openai.com/v1"
AZURE_API_VERSION = "2024-10-21"

TokenLimitField = Literal["max_completion_tokens", "max_tokens"]


def openai_body(
    body: ChatCompletionRequest, model: str | None, *, token_limit_field: TokenLimitField, forward_user: bool
) -> dict[str, Any]:
    payload = body.model_dump(mode="json", exclude_none=True, by_alias=True, exclude={"metadata"})
    if model is None:
        payload.pop("model", None)  # Azure: the deployment in the URL picks the model
    else:
        payload["model"] = model
    payload.pop("max_tokens", None)
    payload.pop("max_completion_tokens", None)
    if body.output_token_limit is not None:
        payload[token_limit_field] = body.output_token_limit
    if not forward_user:
        payload.pop("user", None)
    for message in payload["messages"]:
        if message["role"] == "assistant":
            message.setdefault("content", None)  # some compatible servers require the key
    payload["stream"] = True
    payload["stream_options"] = {"include_usage": True}
    return payload


class OpenAIProvider(HttpProvider):
    """`openai` (api.openai.com unless base_url says otherwise) and `openai_compatible`."""

    def _url(self, body: ChatCompletionRequest | EmbeddingsRequest) -> str:
        return (self.deployment.base_url or OPENAI_BASE_URL).rstrip("/") + self._path(body)

    @staticmethod
    def _path(body: ChatCompletionRequest | EmbeddingsRequest) -> str:
        return "/embeddings" if isinstance(body, EmbeddingsRequest) else "/chat/completions"

    def _auth(self) -> dict[str, str]:
        key = self.deployment.api_key()
        return {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}

    def _payload(self, body: ChatCompletionRequest) -> dict[str, Any]:
        native = self.deployment.provider == "openai"
        # OpenAI's reasoning models refuse `max_tokens`; most compatible servers only know it.
        return openai_body(
            body,
            self.upstream_model(body),
            token_limit_field="max_completion_tokens" if native else "max_tokens",
            forward_user=native,
        )

    def request_for(self, body: ChatCompletionRequest) -> UpstreamRequest:
        payload = json.dumps(self._payload(body), separators=(",", ":")).encode()
        return UpstreamRequest(self._url(body), self.headers(self._auth()), payload)

    def parser_for(self, body: ChatCompletionRequest) -> StreamParser:
        return OpenAIStreamParser(self.name, self.upstream_model(body))

    def stream_for(
        self, body: ChatCompletionRequest, endpoint: ChatEndpoint
    ) -> AsyncGenerator[StreamEvent, None]:
        if endpoint == "responses" and self.deployment.responses == "native":
            return self.stream_over(body, self._responses_request, self._responses_parser)
        return self.stream(body)

    def _responses_request(self, body: ChatCompletionRequest) -> UpstreamRequest:
        native = self.deployment.provider == "openai"
        payload = responses_body(body, self.upstream_model(body), forward_user=native)
        url = (self.deployment.base_url or OPENAI_BASE_URL).rstrip("/") + "/responses"
        return UpstreamRequest(
            url, self.headers(self._auth()), json.dumps(payload, separators=(",", ":")).encode()
        )

    def _responses_parser(self, body: ChatCompletionRequest) -> StreamParser:
        return ResponsesStreamParser(self.name, self.upstream_model(body))

    def _embeddings_payload(self, body: EmbeddingsRequest) -> dict[str, Any]:
        return openai_embeddings_body(body, self.upstream_model(body), self.deployment.provider == "openai")

    def embedding_request_for(self, body: EmbeddingsRequest) -> UpstreamRequest:
        payload = json.dumps(self._embeddings_payload(body), separators=(",", ":")).encode()
        return UpstreamRequest(self._url(body), self.headers(self._auth()), payload)

    def embedded_from(self, document: Any, body: EmbeddingsRequest) -> Embedded:
        return openai_embedded(document, self.upstream_model(body))

    def _media(
        self, path: str, body: bytes | aiohttp.MultipartWriter, json_body: bool = True
    ) -> UpstreamRequest:
        url = (self.deployment.base_url or OPENAI_BASE_URL).rstrip("/") + path
        headers = self.headers(self._auth())
        if not json_body:  # aiohttp writes the form's own Content-Type, with its boundary
            headers.pop("Content-Type")
        return UpstreamRequest(url, headers, body)

    async def generate_images(self, body: ImagesRequest) -> GeneratedImages:
        request = self._media("/images/generations", images_body(body, self.upstream_model(body)))
        return images_from(self, await json_over_http(self, request, MAX_MEDIA_DOCUMENT))

    def speak(self, body: SpeechRequest) -> AsyncIterator[bytes]:
        return audio_over_http(
            self, self._media("/audio/speech", speech_body(body, self.upstream_model(body)))
        )

    async def transcribe(self, body: TranscriptionRequest, audio: AsyncIterator[bytes]) -> Transcribed:
        form = transcription_form(body, self.upstream_model(body), audio)
        request = self._media("/audio/transcriptions", form, json_body=False)
        return transcribed_from(self, await json_over_http(self, request, MAX_TRANSCRIPT_DOCUMENT))

    def error_for(self, status: int, raw: bytes) -> ProviderError:
        doc = error_document(raw)
        if isinstance(doc, dict) and "error" in doc:
            error = doc["error"]
            if isinstance(error, dict):
                error = {**error, "status_code": status}
            elif isinstance(error, str):  # Ollama /v1 and some proxies: a bare string
                error = {"message": error, "status_code": status}
            return inline_error(self.name, error)
        return upstream_error(self.name, status, None, body_excerpt(raw).strip())


class AzureOpenAIProvider(OpenAIProvider):
    """`{base_url}/openai/deployments/{model}/chat/completions?api-version=…` (and `/embeddings`),
    key in `api-key`.

    `model` in the deployment config is the Azure *deployment* name; the answer's `model` field
    names the underlying model version, which is what `Finished.model` reports.
    """

    def _url(self, body: ChatCompletionRequest | EmbeddingsRequest) -> str:
        base = (self.deployment.base_url or "").rstrip("/")
        version = self.deployment.api_version or AZURE_API_VERSION
        name = self.upstream_model(body)
        return f"{base}/openai/deployments/{name}{self._path(body)}?api-version={version}"

    def _auth(self) -> dict[str, str]:
        key = self.deployment.api_key()
        return {"api-key": key.get_secret_value()} if key else {}

    def _payload(self, body: ChatCompletionRequest) -> dict[str, Any]:
        limit_field: TokenLimitField = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
        return openai_body(body, None, token_limit_field=limit_field, forward_user=True)

    def _embeddings_payload(self, body: EmbeddingsRequest) -> dict[str, Any]:
        return openai_embeddings_body(body, None, forward_user=True)
