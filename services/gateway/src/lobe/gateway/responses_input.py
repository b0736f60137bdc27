"""A Responses request as the chat request the workers run (the gateway translates; see
docs/responses.md).

`instructions` become a leading system message; `input` items become messages in order: a
message item as that role's message, function calls as the tool calls of one assistant message
(consecutive calls, and the assistant text before them, are one turn, as Anthropic and Gemini
need them), a function call's output as a tool message; reasoning items are dropped (no chat
provider takes them back). `max_output_tokens` is the chat request's `max_tokens`, so the budget
hold is chat's: the prompt's token ceiling plus that cap.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from lobe.gateway.json_request import read_json_object
from lobe.gateway.request_body import EdgeRequest
from lobe.gateway.responses_schema import (
    FormatJsonObject,
    FormatJsonSchema,
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionChoice,
    InputImage,
    MessageItem,
    Refusal,
    ResponsesRequest,
)
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.openai_errors import ApiError, invalid_request


async def parse_responses_body(request: web.Request) -> ResponsesRequest:
    """POST /v1/responses: the same strict JSON and strict validation as chat's (a 400 naming the
    param)."""
    data = await read_json_object(request)
    try:
        return ResponsesRequest.model_validate(data, strict=True)
    except ValidationError as exc:
        raise invalid_request(exc) from None


def chat_request(asked: ResponsesRequest) -> ChatCompletionRequest:
    body: dict[str, Any] = {
        "model": asked.model,
        "messages": _messages(asked),
        "stream": asked.stream,
        "temperature": asked.temperature,
        "top_p": asked.top_p,
        "max_tokens": asked.max_output_tokens,
        "user": asked.user,
        "metadata": asked.metadata,
        "parallel_tool_calls": asked.parallel_tool_calls,
    }
    if asked.tools:
        body["tools"] = [
            {"type": "function", "function": tool.model_dump(exclude={"type"}, exclude_none=True)}
            for tool in asked.tools
        ]
    choice = asked.tool_choice
    if isinstance(choice, FunctionChoice):
        body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    elif choice is not None:
        body["tool_choice"] = choice
    text_format = asked.text.format if asked.text is not None else None
    if isinstance(text_format, FormatJsonObject):
        body["response_format"] = {"type": "json_object"}
    elif isinstance(text_format, FormatJsonSchema):
        spec = text_format.model_dump(by_alias=True, exclude={"type"}, exclude_none=True)
        body["response_format"] = {"type": "json_schema", "json_schema": spec}
    if asked.reasoning is not None and asked.reasoning.effort is not None:
        body["reasoning_effort"] = asked.reasoning.effort
    try:
        # Built from values the Responses schema checked, within the chat schema's bounds.
        return EdgeRequest.model_validate(body)
    except ValidationError:  # input of reasoning items alone: no message to send
        raise ApiError(400, "'input' has no message to answer.", "invalid_request", param="input") from None


def _messages(asked: ResponsesRequest) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if asked.instructions:
        messages.append({"role": "system", "content": asked.instructions})
    if isinstance(asked.input, str):
        return [*messages, {"role": "user", "content": asked.input}]
    for item in asked.input:
        if isinstance(item, MessageItem):
            messages.append(_message(item))
        elif isinstance(item, FunctionCallItem):
            call = {
                "id": item.call_id,
                "type": "function",
                "function": {"name": item.name, "arguments": item.arguments},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif isinstance(item, FunctionCallOutputItem):
            output = item.output if isinstance(item.output, str) else _text(item.output)
            messages.append({"role": "tool", "tool_call_id": item.call_id, "content": output})
    return messages


def _message(item: MessageItem) -> dict[str, Any]:
    if isinstance(item.content, str):
        return {"role": item.role, "content": item.content}
    if item.role != "user":
        return {"role": item.role, "content": _text(item.content)}
    parts: list[dict[str, Any]] = []
    for part in item.content:
        if isinstance(part, InputImage):
            parts.append({"type": "image_url", "image_url": {"url": part.image_url, "detail": part.detail}})
        else:
            parts.append({"type": "text", "text": _text([part])})
    return {"role": "user", "content": parts}


def _text(parts: list[Any]) -> str:
    """The text of text parts (input_text, output_text, refusal), joined."""
    return "".join(part.refusal if isinstance(part, Refusal) else part.text for part in parts)
