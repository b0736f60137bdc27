"""Upstream failures → `ProviderError`, with one status policy for every adapter, and what of
them a client reads (`for_client`).

The status is what *our* client should see, not a copy of the provider's:
- 400 / 413 / 422 → 400, not retryable: the request itself is refused. A prompt longer than the
  model's context window gets one code whatever the provider calls it, `context_length_exceeded`:
  routing moves such a request to a larger-context model when one is configured.
- 401 / 403 → 502 `upstream_auth`, not retryable: the client's key is fine, ours is not.
- 404 → 502 `upstream_not_found`, retryable: the client asked for a model we route, so a missing
  upstream model is our configuration error; another deployment may serve it.
- 408 → 504 `upstream_timeout`, retryable. 429 → 429, retryable (another deployment may have quota).
- 5xx and Anthropic's 529 → 502, retryable. Anything else → 502, not retryable.

The provider's words never reach the client: an error body may be a proxy's HTML page, name our
account or organisation, quote part of our key, or name the upstream host. The client reads a
fixed message for the code (ours, or OpenAI's for the status: `rate_limit_exceeded`,
`invalid_request_error`, `context_length_exceeded`); the provider's text stays in the worker's
log under the request id. Only messages the worker wrote itself about the client's request
(`ProviderError.ours`) are passed on.
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


# What a client reads for each code the worker gives; a provider's own code is replaced by the
# one its status stands for (CODE_FOR_STATUS).
CLIENT_MESSAGES = {
    CONTEXT_LENGTH_EXCEEDED: "The request is longer than the model's context window; "
    "shorten the messages or lower max_tokens.",
    "invalid_request_error": "The model provider refused the request as invalid.",
    "rate_limit_exceeded": "The model provider's rate limit was reached; retry shortly.",
    "upstream_auth": "The model provider refused this gateway's credentials.",
    "upstream_not_found": "The model provider does not serve the model this gateway routes to.",
    "upstream_timeout": "The model provider did not answer in time.",
    "upstream_unreachable": "The model provider could not be reached.",
    "upstream_disconnected": "The connection to the model provider broke off.",
    "upstream_truncated": "The model provider's answer ended before it completed.",
    "upstream_malformed": "The model provider's answer could not be read.",
    "upstream_error": "The model provider failed to answer.",
}
CODE_FOR_STATUS = {400: "invalid_request_error", 429: "rate_limit_exceeded", 504: "upstream_timeout"}


def for_client(exc: ProviderError) -> tuple[str, str]:
    """(code, message) the client reads for this failure."""
    if exc.ours:
        return exc.code, exc.message
    code = exc.code if exc.code in CLIENT_MESSAGES else CODE_FOR_STATUS.get(exc.status, "upstream_error")
    return code, CLIENT_MESSAGES[code]


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
