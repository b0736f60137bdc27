"""Ollama native `/api/chat` adapter (NDJSON).

Translation: system/developer stay `system` messages; images must be `data:` URLs (Ollama takes
bare base64 and cannot fetch URLs: anything else is a 400 naming the part); tool calls carry
`arguments` as objects; sampling goes under `options` (`max_tokens` → `num_predict`);
`response_format` → `format` ("json" or the schema); `reasoning_effort` → `think: true`.
Ollama reports `done_reason: "stop"` after a tool call; clients expect `tool_calls`, so that is
what `Finished` says. `/api/generate` lines (`response` instead of `message`) parse the same way.

Embeddings: `POST /api/embed` with `input` (a string or a list) and `dimensions`; the answer's
`embeddings` come in input order, its `prompt_eval_count` is the tokens of all the inputs.
"""

from __future__ import annotations

import json
from typing import Any

from lobe.chat_worker.http.upstream import TransportError, UpstreamRequest
from lobe.chat_worker.providers.base import Finished, ProviderError, ReasoningDelta, StreamEvent, TextDelta
from lobe.chat_worker.providers.embedding import Embedded, vector_of
from lobe.chat_worker.providers.errors import body_excerpt, error_document, upstream_error
from lobe.chat_worker.providers.framed import FramedStreamParser
from lobe.chat_worker.providers.http_base import HttpProvider, StreamParser
from lobe.chat_worker.providers.ndjson import NDJSONDecoder
from lobe.chat_worker.providers.sse import FramingError
from lobe.chat_worker.providers.translate import DATA_URL, stop_sequences, tool_arguments, without_none
from lobe.shared.chat_schema import (
    AssistantMessage,
    ChatCompletionRequest,
    ResponseFormatJsonObject,
    ResponseFormatJsonSchema,
    TextPart,
    ToolMessage,
    UserMessage,
)
from lobe.shared.embeddings_schema import EmbeddingsRequest
from lobe.shared.events.chat import FinishReason, TokenUsage, ToolCallDelta


def _message(index: int, message: Any) -> dict[str, Any]:
    content = message.content
    out: dict[str, Any] = {"role": message.role}
    if isinstance(content, list):
        out["content"] = "".join(p.text for p in content if isinstance(p, TextPart))
        if isinstance(message, UserMessage):
            images = []
            for j, part in enumerate(content):
                if isinstance(part, TextPart):
                    continue
                match = DATA_URL.match(part.image_url.url)
                if not match:
                    field = f"messages[{index}].content[{j}].image_url.url"
                    raise ProviderError(
                        "ollama",
                        400,
                        "invalid_request_error",
                        f"{field}: ollama needs a data: URL",
                        ours=True,
                    )
                images.append(match["data"])
            if images:
                out["images"] = images
    else:
        out["content"] = content or ""
    if isinstance(message, AssistantMessage) and message.tool_calls:
        out["tool_calls"] = [
            {"function": {"name": c.function.name, "arguments": tool_arguments(
                "ollama", c.function.arguments, f"messages[{index}].tool_calls[{j}].function.arguments")}}
            for j, c in enumerate(message.tool_calls)
        ]  # fmt: skip
    if isinstance(message, ToolMessage):
        out["tool_call_id"] = message.tool_call_id
    return out


def ollama_body(body: ChatCompletionRequest, model: str) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": model,
        "messages": [_message(i, m) for i, m in enumerate(body.messages)],
        "stream": True,
    }
    if body.tools:
        payload["tools"] = [tool.model_dump(exclude_none=True) for tool in body.tools]
    options = without_none(
        temperature=body.temperature,
        top_p=body.top_p,
        num_predict=body.output_token_limit,
        seed=body.seed,
        presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty,
        stop=stop_sequences(body.stop),
    )
    if options:
        payload["options"] = options
    if isinstance(body.response_format, ResponseFormatJsonObject):
        payload["format"] = "json"
    elif isinstance(body.response_format, ResponseFormatJsonSchema):
        payload["format"] = body.response_format.json_schema.schema_ or "json"
    if body.reasoning_effort:
        payload["think"] = True
    return payload


class OllamaStreamParser(FramedStreamParser[Any]):
    def __init__(self, fallback_model: str) -> None:
        self.decoder = NDJSONDecoder()
        self.model = fallback_model
        self.done: dict[str, Any] | None = None
        self.calls = 0

    def _check_complete(self) -> None:
        if self.done is None:
            raise TransportError(502, "upstream_truncated", "stream ended before a done:true line")

    def _final(self, out: list[StreamEvent]) -> list[StreamEvent]:
        done = self.done or {}  # set: _check_complete ran first
        reason = done.get("done_reason")
        finish: FinishReason = "length" if reason == "length" else "tool_calls" if self.calls else "stop"
        out.append(Finished(reason=finish, model=self.model))
        if "prompt_eval_count" in done or "eval_count" in done:
            prompt, output = done.get("prompt_eval_count") or 0, done.get("eval_count") or 0
            out.append(TokenUsage(prompt_tokens=prompt, completion_tokens=output, basis="provider"))
        return out

    def _frame(self, line: Any, out: list[StreamEvent]) -> None:
        if not isinstance(line, dict):
            raise FramingError(f"malformed ollama line: expected a JSON object, got {line!r:.200}")
        if "error" in line:
            raise upstream_error("ollama", 500, None, str(line["error"]))
        if line.get("model"):
            self.model = str(line["model"])
        message = line.get("message") or {}
        thinking = message.get("thinking") or line.get("thinking")
        if thinking:
            out.append(ReasoningDelta(thinking))
        text = message.get("content") or line.get("response")
        if text:
            out.append(TextDelta(text))
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            arguments = json.dumps(function.get("arguments") or {}, ensure_ascii=False)
            call_id = call.get("id") or f"call_{self.calls}"
            out.append(
                ToolCallDelta(index=self.calls, id=call_id, name=function.get("name"), arguments=arguments)
            )
            self.calls += 1
        if line.get("done"):
            self.done = line


class OllamaProvider(HttpProvider):
    def _request(self, path: str, payload: object) -> UpstreamRequest:
        url = (self.deployment.base_url or "").rstrip("/") + path
        key = self.deployment.api_key()  # only behind an authenticating proxy
        own = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}
        return UpstreamRequest(url, self.headers(own), json.dumps(payload, separators=(",", ":")).encode())

    def request_for(self, body: ChatCompletionRequest) -> UpstreamRequest:
        return self._request("/api/chat", ollama_body(body, self.upstream_model(body)))

    def embedding_request_for(self, body: EmbeddingsRequest) -> UpstreamRequest:
        payload: dict[str, Any] = {"model": self.upstream_model(body), "input": body.input}
        if body.dimensions is not None:
            payload["dimensions"] = body.dimensions
        return self._request("/api/embed", payload)

    def embedded_from(self, document: Any, body: EmbeddingsRequest) -> Embedded:
        count = document.get("prompt_eval_count")
        usage = TokenUsage(prompt_tokens=count, completion_tokens=0) if isinstance(count, int) else None
        vectors = [vector_of(vector) for vector in document["embeddings"]]
        return Embedded(
            vectors=vectors, model=str(document.get("model") or self.upstream_model(body)), usage=usage
        )

    def parser_for(self, body: ChatCompletionRequest) -> StreamParser:
        return OllamaStreamParser(self.upstream_model(body))

    def error_for(self, status: int, raw: bytes) -> ProviderError:
        doc = error_document(raw)
        message = doc.get("error") if isinstance(doc, dict) else None
        return upstream_error(self.name, status, None, str(message or body_excerpt(raw)))
