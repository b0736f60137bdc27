"""Anthropic Messages API adapter (`POST {base_url}/v1/messages`, `x-api-key`, `anthropic-version`)."""

from __future__ import annotations

import json

from lobe.chat_worker.http.upstream import UpstreamRequest
from lobe.chat_worker.providers.anthropic_request import anthropic_body
from lobe.chat_worker.providers.anthropic_stream import AnthropicStreamParser, anthropic_error
from lobe.chat_worker.providers.base import ProviderError
from lobe.chat_worker.providers.errors import body_excerpt, error_document, upstream_error
from lobe.chat_worker.providers.http_base import HttpProvider, StreamParser
from lobe.shared.chat_schema import ChatCompletionRequest

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"


class AnthropicProvider(HttpProvider):
    def request_for(self, body: ChatCompletionRequest) -> UpstreamRequest:
        url = (self.deployment.base_url or ANTHROPIC_BASE_URL).rstrip("/") + "/v1/messages"
        own = {"anthropic-version": self.deployment.api_version or ANTHROPIC_VERSION}
        if key := self.deployment.api_key():
            own["x-api-key"] = key.get_secret_value()
        payload = anthropic_body(body, self.upstream_model(body))
        return UpstreamRequest(url, self.headers(own), json.dumps(payload, separators=(",", ":")).encode())

    def parser_for(self, body: ChatCompletionRequest) -> StreamParser:
        return AnthropicStreamParser(self.upstream_model(body))

    def error_for(self, status: int, raw: bytes) -> ProviderError:
        doc = error_document(raw)
        if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
            return anthropic_error(doc["error"], status)
        return upstream_error(self.name, status, None, body_excerpt(raw).strip())
