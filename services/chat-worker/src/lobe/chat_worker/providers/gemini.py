"""Google Gemini adapter: `POST {base_url}/models/{model}:streamGenerateContent?alt=sse`,
key in `x-goog-api-key` (never in the URL, where it would end up in access logs).

Embeddings: `POST {base_url}/models/{model}:batchEmbedContents`, one `EmbedContentRequest` per
input (`outputDimensionality` from `dimensions`); the answer's `embeddings[i].values` come in
request order. Gemini reports no token count for embeddings: the usage is estimated.
"""

from __future__ import annotations

import json
from typing import Any

from lobe.chat_worker.http.upstream import UpstreamRequest
from lobe.chat_worker.providers.base import ProviderError
from lobe.chat_worker.providers.embedding import Embedded, vector_of
from lobe.chat_worker.providers.errors import body_excerpt, error_document, upstream_error
from lobe.chat_worker.providers.gemini_request import gemini_body
from lobe.chat_worker.providers.gemini_stream import GeminiStreamParser, gemini_error
from lobe.chat_worker.providers.http_base import HttpProvider, StreamParser
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.embeddings_schema import EmbeddingsRequest

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"


def gemini_embeddings_body(body: EmbeddingsRequest, model: str) -> dict[str, Any]:
    one: dict[str, Any] = {"model": f"models/{model}"}
    if body.dimensions is not None:
        one["outputDimensionality"] = body.dimensions
    return {"requests": [{**one, "content": {"parts": [{"text": text}]}} for text in body.texts]}


class GeminiProvider(HttpProvider):
    def _request(
        self, method: str, body: ChatCompletionRequest | EmbeddingsRequest, payload: object
    ) -> UpstreamRequest:
        base = (self.deployment.base_url or GEMINI_BASE_URL).rstrip("/")
        url = f"{base}/models/{self.upstream_model(body)}:{method}"
        own = {}
        if key := self.deployment.api_key():
            own["x-goog-api-key"] = key.get_secret_value()
        return UpstreamRequest(url, self.headers(own), json.dumps(payload, separators=(",", ":")).encode())

    def request_for(self, body: ChatCompletionRequest) -> UpstreamRequest:
        return self._request("streamGenerateContent?alt=sse", body, gemini_body(body))

    def embedding_request_for(self, body: EmbeddingsRequest) -> UpstreamRequest:
        return self._request(
            "batchEmbedContents", body, gemini_embeddings_body(body, self.upstream_model(body))
        )

    def embedded_from(self, document: Any, body: EmbeddingsRequest) -> Embedded:
        vectors = [vector_of(item["values"]) for item in document["embeddings"]]
        return Embedded(vectors=vectors, model=self.upstream_model(body), usage=None)

    def parser_for(self, body: ChatCompletionRequest) -> StreamParser:
        return GeminiStreamParser(self.upstream_model(body))

    def error_for(self, status: int, raw: bytes) -> ProviderError:
        doc = error_document(raw)
        if isinstance(doc, list) and doc and isinstance(doc[0], dict):
            doc = doc[0]  # some Google front ends wrap the status in a list
        if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
            return gemini_error(doc["error"], status)
        return upstream_error(self.name, status, None, body_excerpt(raw).strip())
