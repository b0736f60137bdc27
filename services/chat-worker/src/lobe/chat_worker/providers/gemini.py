"""Google Gemini adapter: `POST {base_url}/models/{model}:streamGenerateContent?alt=sse`,
key in `x-goog-api-key` (never in the URL, where it would end up in access logs)."""

from __future__ import annotations

import json

from lobe.chat_worker.http.upstream import UpstreamRequest
from lobe.chat_worker.providers.base import ProviderError
from lobe.chat_worker.providers.errors import body_excerpt, error_document, upstream_error
from lobe.chat_worker.providers.gemini_request import gemini_body
from lobe.chat_worker.providers.gemini_stream import GeminiStreamParser, gemini_error
from lobe.chat_worker.providers.http_base import HttpProvider, StreamParser
from lobe.shared.chat_schema import ChatCompletionRequest

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"


class GeminiProvider(HttpProvider):
    def request_for(self, body: ChatCompletionRequest) -> UpstreamRequest:
        base = (self.deployment.base_url or GEMINI_BASE_URL).rstrip("/")
        url = f"{base}/models/{self.upstream_model(body)}:streamGenerateContent?alt=sse"
        own = {}
        if key := self.deployment.api_key():
            own["x-goog-api-key"] = key.get_secret_value()
        payload = json.dumps(gemini_body(body), separators=(",", ":")).encode()
        return UpstreamRequest(url, self.headers(own), payload)

    def parser_for(self, body: ChatCompletionRequest) -> StreamParser:
        return GeminiStreamParser(self.upstream_model(body))

    def error_for(self, status: int, raw: bytes) -> ProviderError:
        doc = error_document(raw)
        if isinstance(doc, list) and doc and isinstance(doc[0], dict):
            doc = doc[0]  # some Google front ends wrap the status in a list
        if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
            return gemini_error(doc["error"], status)
        return upstream_error(self.name, status, None, body_excerpt(raw).strip())
