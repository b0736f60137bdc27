"""OpenAI chat request → Anthropic Messages request.

Policy where the two APIs differ (documented, never silent mis-handling):
- system and developer messages, wherever they are, become the top-level `system` (joined).
- `tool` messages become `tool_result` blocks in a user turn (consecutive ones share the turn, as
  Anthropic requires for parallel calls); assistant `tool_calls` become `tool_use` blocks.
- `max_tokens` is required upstream: the client's limit, else DEFAULT_MAX_TOKENS.
- `temperature` is clamped to Anthropic's 0..1; `stop` → `stop_sequences`; `user` →
  `metadata.user_id`; `json_schema` → `output_config.format`; `json_object` (no Anthropic
  equivalent) → an instruction appended to the system prompt.
- `seed`, `presence_penalty`, `frequency_penalty` and `reasoning_effort` have no equivalent and
  are dropped (sampling hints; the answer's shape does not depend on them).
"""

from __future__ import annotations

from typing import Any

from lobe.chat_worker.providers.translate import DATA_URL, content_text, stop_sequences, tool_arguments
from lobe.shared.chat_schema import (
    AssistantMessage,
    ChatCompletionRequest,
    DeveloperMessage,
    ImagePart,
    NamedToolChoice,
    ResponseFormatJsonObject,
    ResponseFormatJsonSchema,
    SystemMessage,
    TextPart,
    ToolMessage,
)

DEFAULT_MAX_TOKENS = 4096
JSON_OBJECT_INSTRUCTION = "Respond with a single valid JSON object and nothing else."


def _image(part: ImagePart) -> dict[str, Any]:
    url = part.image_url.url
    if match := DATA_URL.match(url):
        source = {"type": "base64", "media_type": match["media"], "data": match["data"]}
        return {"type": "image", "source": source}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _user_content(content: Any) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    return [
        {"type": "text", "text": part.text} if isinstance(part, TextPart) else _image(part)
        for part in content
    ]


def _tool_use(message: AssistantMessage, index: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if text := content_text(message.content):
        blocks.append({"type": "text", "text": text})
    for j, call in enumerate(message.tool_calls or ()):
        field = f"messages[{index}].tool_calls[{j}].function.arguments"
        arguments = tool_arguments("anthropic", call.function.arguments, field)
        blocks.append({"type": "tool_use", "id": call.id, "name": call.function.name, "input": arguments})
    return blocks


def _messages(body: ChatCompletionRequest) -> tuple[list[str], list[dict[str, Any]]]:
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(body.messages):
        if isinstance(message, SystemMessage | DeveloperMessage):
            system.append(content_text(message.content))
        elif isinstance(message, AssistantMessage):
            if message.tool_calls:
                turns.append({"role": "assistant", "content": _tool_use(message, index)})
            else:
                turns.append({"role": "assistant", "content": content_text(message.content)})
        elif isinstance(message, ToolMessage):
            result = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
                "content": content_text(message.content),
            }
            # Only tool messages make turns whose last block is a tool_result.
            previous = turns[-1]["content"] if turns else None
            if isinstance(previous, list) and previous and previous[-1]["type"] == "tool_result":
                previous.append(result)
            else:
                turns.append({"role": "user", "content": [result]})
        else:
            turns.append({"role": "user", "content": _user_content(message.content)})
    return system, turns


def _tool_choice(body: ChatCompletionRequest) -> dict[str, Any] | None:
    choice = body.tool_choice
    result: dict[str, Any] | None
    if choice is None:
        result = None
    elif isinstance(choice, NamedToolChoice):
        result = {"type": "tool", "name": choice.function.name}
    else:
        result = {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]}
    if body.parallel_tool_calls is False and body.tools:
        result = {**(result or {"type": "auto"}), "disable_parallel_tool_use": True}
    return result


def anthropic_body(body: ChatCompletionRequest, model: str) -> dict[str, Any]:
    system, messages = _messages(body)
    payload: dict[str, Any] = {
        "model": model,
        "max_tokens": body.output_token_limit or DEFAULT_MAX_TOKENS,
        "messages": messages,
        "stream": True,
    }
    if isinstance(body.response_format, ResponseFormatJsonObject):
        system.append(JSON_OBJECT_INSTRUCTION)
    elif (
        isinstance(body.response_format, ResponseFormatJsonSchema)
        and body.response_format.json_schema.schema_
    ):
        payload["output_config"] = {
            "format": {"type": "json_schema", "schema": body.response_format.json_schema.schema_}
        }
    if system:
        payload["system"] = "\n\n".join(system)
    if body.tools:
        payload["tools"] = [
            _tool(t.function.name, t.function.description, t.function.parameters) for t in body.tools
        ]
    if (choice := _tool_choice(body)) is not None:
        payload["tool_choice"] = choice
    if body.temperature is not None:
        payload["temperature"] = min(body.temperature, 1.0)
    if body.top_p is not None:
        payload["top_p"] = body.top_p
    if body.stop:
        payload["stop_sequences"] = stop_sequences(body.stop)
    if body.user:
        payload["metadata"] = {"user_id": body.user}
    return payload


def _tool(name: str, description: str | None, parameters: dict[str, Any] | None) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": name}
    if description:
        tool["description"] = description
    tool["input_schema"] = parameters or {"type": "object", "properties": {}}
    return tool
