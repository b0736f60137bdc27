"""OpenAI chat request → Gemini `GenerateContentRequest`.

- system / developer messages → `systemInstruction`; assistant → role `model`; tool results →
  `functionResponse` parts in a user turn (the function name is looked up from the assistant's
  call with that id; a result that is not a JSON object is wrapped as `{"return_value": …}`).
- Tool parameter schemas are cut down to the OpenAPI subset Gemini accepts (unknown keys such as
  `additionalProperties` or `$schema` are a 400 there) with upper-case type names.
- `response_format` → `responseMimeType` (+ `responseSchema`); `reasoning_effort` →
  `thinkingConfig` with thought summaries on. Thought signatures are not round-tripped.
"""

from __future__ import annotations

import json
import mimetypes
from typing import Any

from lobe.chat_worker.providers.translate import (
    DATA_URL,
    content_text,
    stop_sequences,
    tool_arguments,
    without_none,
)
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

SCHEMA_KEYS = frozenset(
    {"type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
     "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf",
     "propertyOrdering", "default", "items", "minimum", "maximum"}
)  # fmt: skip
THINKING_BUDGET = {"minimal": 0, "low": 1024, "medium": 8192, "high": 24576}


def gemini_schema(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in SCHEMA_KEYS:
            continue
        if key == "type" and isinstance(value, str):
            out[key] = value.upper()
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: gemini_schema(sub) for name, sub in value.items()}
        elif key == "items":
            out[key] = gemini_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            out[key] = [gemini_schema(sub) for sub in value]
        else:
            out[key] = value
    return out


def _image(part: ImagePart) -> dict[str, Any]:
    url = part.image_url.url
    if match := DATA_URL.match(url):
        return {"inlineData": {"mimeType": match["media"], "data": match["data"]}}
    mime = mimetypes.guess_type(url.split("?")[0])[0] or "image/jpeg"
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _tool_response(message: ToolMessage, names: dict[str, str]) -> dict[str, Any]:
    text = content_text(message.content)
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    response = value if isinstance(value, dict) else {"return_value": text}
    name = names.get(message.tool_call_id, "")
    return {"functionResponse": {"id": message.tool_call_id, "name": name, "response": response}}


def _contents(body: ChatCompletionRequest) -> tuple[list[str], list[dict[str, Any]]]:
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for index, message in enumerate(body.messages):
        if isinstance(message, SystemMessage | DeveloperMessage):
            system.append(content_text(message.content))
        elif isinstance(message, AssistantMessage):
            text = content_text(message.content)
            parts: list[dict[str, Any]] = [{"text": text}] if text else []
            for j, call in enumerate(message.tool_calls or ()):
                names[call.id] = call.function.name
                field = f"messages[{index}].tool_calls[{j}].function.arguments"
                args = tool_arguments("gemini", call.function.arguments, field)
                parts.append({"functionCall": {"id": call.id, "name": call.function.name, "args": args}})
            contents.append({"role": "model", "parts": parts})
        elif isinstance(message, ToolMessage):
            part = _tool_response(message, names)
            previous = contents[-1] if contents else None
            if previous and previous["role"] == "user" and "functionResponse" in previous["parts"][-1]:
                previous["parts"].append(part)
            else:
                contents.append({"role": "user", "parts": [part]})
        elif isinstance(message.content, str):
            contents.append({"role": "user", "parts": [{"text": message.content}]})
        else:
            parts = [{"text": p.text} if isinstance(p, TextPart) else _image(p) for p in message.content]
            contents.append({"role": "user", "parts": parts})
    return system, contents


def _generation_config(body: ChatCompletionRequest) -> dict[str, Any]:
    config = without_none(
        temperature=body.temperature,
        topP=body.top_p,
        maxOutputTokens=body.output_token_limit,
        seed=body.seed,
        presencePenalty=body.presence_penalty,
        frequencyPenalty=body.frequency_penalty,
    )
    if body.stop:
        config["stopSequences"] = stop_sequences(body.stop)
    if isinstance(body.response_format, ResponseFormatJsonObject | ResponseFormatJsonSchema):
        config["responseMimeType"] = "application/json"
    if (
        isinstance(body.response_format, ResponseFormatJsonSchema)
        and body.response_format.json_schema.schema_
    ):
        config["responseSchema"] = gemini_schema(body.response_format.json_schema.schema_)
    if body.reasoning_effort:
        budget = THINKING_BUDGET[body.reasoning_effort]
        config["thinkingConfig"] = {"includeThoughts": budget > 0, "thinkingBudget": budget}
    return config


def _tool_config(body: ChatCompletionRequest) -> dict[str, Any] | None:
    choice = body.tool_choice
    if choice is None:
        return None
    if isinstance(choice, NamedToolChoice):
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [choice.function.name]}}
    return {"functionCallingConfig": {"mode": {"auto": "AUTO", "required": "ANY", "none": "NONE"}[choice]}}


def gemini_body(body: ChatCompletionRequest) -> dict[str, Any]:
    system, contents = _contents(body)
    payload: dict[str, Any] = {"contents": contents, "generationConfig": _generation_config(body)}
    if system:
        payload["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}], "role": "user"}
    if body.tools:
        declarations = []
        for tool in body.tools:
            declaration: dict[str, Any] = {"name": tool.function.name}
            if tool.function.description is not None:
                declaration["description"] = tool.function.description
            if tool.function.parameters:
                declaration["parameters"] = gemini_schema(tool.function.parameters)
            declarations.append(declaration)
        payload["tools"] = [{"functionDeclarations": declarations}]
    if (tool_config := _tool_config(body)) is not None:
        payload["toolConfig"] = tool_config
    return payload
