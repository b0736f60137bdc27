"""Upstream failures → `ProviderError`, with one status policy for every adapter.

The status is what *our* client should see, not a copy of the provider's:
- 400 / 413 / 422 → 400, not retryable: the request itself is refused; the provider's message
  is passed through because it names the offending field. A prompt longer than the model's
  context window gets one code whatever the provider calls it, `context_length_exceeded`: routing
  moves such a request to a larger-context model when one is configured.
- 401 / 403 → 502 `upstream_auth`, not retryable: the client's key is fine, ours is not. The
  provider's message is withheld (it may echo part of our key).
- 404 → 502 `upstream_not_found`, retryable: the client asked for a model we route, so a missing
  upstream model is our configuration error; another deployment may serve it.
- 408 → 504 `upstream_timeout`, retryable. 429 → 429, retryable (another deployment may have quota).
- 5xx and Anthropic's 529 → 502, retryable. Anything else → 502, not retryable.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lobe.chat_worker.providers.base import ProviderError

# Anthropic's error `type`s (also sent mid-stream, where no HTTP status exists) → their HTTP status.
ANTHROPIC_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
# How each provider words it: OpenAI, Azure, vLLM, DeepSeek, OpenRouter ("maximum context length is
# N tokens"), Anthropic ("prompt is too long: N tokens > M maximum"), Gemini ("The input token count
# (N) exceeds the maximum number of tokens allowed (M)"), Mistral ("too large for model with N
# maximum context length"), Ollama ("input length exceeds the context length").
_CONTEXT_OVERFLOW = re.compile(
    r"context[ _-]?(length|window)|prompt is too long|input token count|maximum number of tokens allowed",
    re.IGNORECASE,
)


def is_context_overflow(code: str | None, message: str) -> bool:
    return code == CONTEXT_LENGTH_EXCEEDED or bool(_CONTEXT_OVERFLOW.search(message))


def upstream_error(provider: str, status: int, code: str | None, message: str) -> ProviderError:
    """Map an upstream HTTP status (or the status an in-stream error stands for). Whether output
    had been yielded before is the stream driver's to say (`HttpProvider.stream`), not ours."""
    message = message or f"provider returned HTTP {status}"
    if status in (400, 413, 422):
        if is_context_overflow(code, message):
            code = CONTEXT_LENGTH_EXCEEDED
        return ProviderError(provider, 400, code or "invalid_request_error", message, False)
    if status in (401, 403):
        withheld = f"{provider} rejected the gateway's credentials (HTTP {status})"
        return ProviderError(provider, 502, "upstream_auth", withheld, False)
    if status == 404:
        return ProviderError(provider, 502, "upstream_not_found", message, True)
    if status == 408:
        return ProviderError(provider, 504, "upstream_timeout", message, True)
    if status == 429:
        return ProviderError(provider, 429, code or "rate_limit_exceeded", message, True)
    if status >= 500:
        return ProviderError(provider, 502, code or "upstream_error", message, True)
    return ProviderError(provider, 502, code or "upstream_error", message, False)


def as_code(value: object) -> str | None:
    """Providers send codes as strings, numbers or null; we carry a string or nothing."""
    if value is None or value == "":
        return None
    return str(value)


def error_document(raw: bytes) -> Any:
    """An HTTP error body parsed as JSON, or None: proxies and load balancers answer in HTML or text."""
    try:
        return json.loads(raw)
    except ValueError:
        return None


def body_excerpt(raw: bytes) -> str:
    """The start of an error body that holds no provider error document, for the message."""
    return raw[:500].decode(errors="replace")
