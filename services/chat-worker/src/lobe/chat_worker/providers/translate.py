"""Small pieces of request translation shared by the non-OpenAI adapters."""

from __future__ import annotations

import json
from typing import Any

from lobe.chat_worker.providers.base import ProviderError


def tool_arguments(provider: str, arguments: str, field: str) -> Any:
    """A prior assistant tool call's arguments as JSON; providers that want an object get a 400
    naming the field when the client sent something else."""
    if not arguments.strip():
        return {}
    try:
        return json.loads(arguments)
    except ValueError as exc:
        raise ProviderError(provider, 400, "invalid_request_error", f"{field} is not JSON: {exc}") from exc
