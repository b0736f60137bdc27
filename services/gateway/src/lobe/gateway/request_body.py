"""The chat request body: read, parsed and validated, or a 400 in OpenAI's error format."""

from __future__ import annotations

import json

from aiohttp import web
from pydantic import ValidationError

from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.openai_errors import ApiError, invalid_request


async def parse_body(request: web.Request) -> ChatCompletionRequest:
    raw = await request.read()
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ApiError(
            400, f"We could not parse the JSON body of your request: {exc}", "invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.", "invalid_json")
    try:
        return ChatCompletionRequest.model_validate(data)
    except ValidationError as exc:
        raise invalid_request(exc) from None
