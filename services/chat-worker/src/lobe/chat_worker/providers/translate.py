"""Small pieces of request translation shared by the non-OpenAI adapters."""

from __future__ import annotations

import json
import re
from typing import Any

from lobe.chat_worker.providers.base import ProviderError
from lobe.shared.chat_schema import TextPart

# An inline image. Anthropic and Gemini take its media type and base64 separately, Ollama only the
# base64; none of them accepts the URL form itself.
DATA_URL = re.compile(r"^data:(?P<media>[\w/+.-]+);base64,(?P<data>.*)$", re.DOTALL)


def content_text(content: str | list[TextPart] | None) -> str:
    """A system, developer, assistant or tool message's content as one string."""
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(part.text for part in content)


def stop_sequences(stop: str | list[str] | None) -> list[str] | None:
    """OpenAI takes one stop string or a list; the other providers only a list."""
    return [stop] if isinstance(stop, str) else stop


def without_none(**fields: Any) -> dict[str, Any]:
    """Only the fields the client set, so that the provider's own defaults apply to the rest."""
    return {key: value for key, value in fields.items() if value is not None}


def tool_arguments(provider: str, arguments: str, field: str) -> Any:
    """A prior assistant tool call's arguments as JSON; providers that want an object get a 400
    naming the field when the client sent something else."""
    if not arguments.strip():
        return {}
    try:
        return json.loads(arguments)
    except ValueError as exc:
        message = f"{field} is not JSON: {exc}"  # json's words: a position in the client's own text
        raise ProviderError(provider, 400, "invalid_request_error", message, ours=True) from exc
