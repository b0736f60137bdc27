"""Reply frames → OpenAI's wire format: SSE chunks for streams, one object for the rest."""

from __future__ import annotations

import json
import time
from typing import Any

from lobe.shared.events.chat import DoneFrame, TokenUsage, UsageFrame
from lobe.shared.events.chat_wire import WireDelta
from lobe.shared.openai_errors import ApiError

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
DONE_EVENT = b"data: [DONE]\n\n"


def completion_id(request_id: str) -> str:
    return f"chatcmpl-{request_id}"


def usage_object(usage: TokenUsage, cost_usd: float | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }
    if cost_usd is not None:
        body["cost"] = cost_usd  # OpenRouter's field name; SDKs keep unknown usage fields
    return body


def sse_event(payload: dict[str, Any]) -> bytes:
    return b"data: " + _dumps(payload).encode() + b"\n\n"


def delta_body(frame: WireDelta) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if frame.content is not None:
        delta["content"] = frame.content
    if frame.reasoning_content is not None:
        delta["reasoning_content"] = frame.reasoning_content
    if frame.tool_calls:
        calls = []
        for call in frame.tool_calls:
            entry: dict[str, Any] = {"index": call.index, "function": {"arguments": call.arguments}}
            if call.id is not None:
                entry["id"] = call.id
                entry["type"] = "function"
            if call.name is not None:
                entry["function"]["name"] = call.name
            calls.append(entry)
        delta["tool_calls"] = calls
    return delta


class ChunkWriter:
    """Builds `chat.completion.chunk` events for one streamed answer."""

    def __init__(self, request_id: str, model: str, include_usage: bool) -> None:
        self.base = {
            "id": completion_id(request_id),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
        }
        self.model = model
        self.include_usage = include_usage
        self.sent_role = False

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        payload = {**self.base, "model": self.model, "system_fingerprint": None, "choices": choices, **extra}
        if self.include_usage and "usage" not in extra:
            payload["usage"] = None
        return sse_event(payload)

    def delta(self, frame: WireDelta) -> list[bytes]:
        delta = delta_body(frame)
        if not self.sent_role:
            delta = {"role": "assistant", **delta}
            self.sent_role = True
        return [self._chunk([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])]

    def finish(self, frame: DoneFrame) -> bytes:
        delta = {} if self.sent_role else {"role": "assistant", "content": ""}
        self.sent_role = True
        return self._chunk(
            [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": frame.finish_reason}]
        )

    def usage(self, frame: UsageFrame) -> bytes:
        return self._chunk([], usage=usage_object(frame.usage, frame.cost_usd))

    def end(self, done: DoneFrame, usage: UsageFrame | None) -> list[bytes]:
        """The finish chunk, then (when asked for) the usage chunk, as OpenAI sends them, and [DONE]."""
        chunks = [self.finish(done)]
        if usage is not None and self.include_usage:
            chunks.append(self.usage(usage))
        return [*chunks, DONE_EVENT]

    def error(self, error: ApiError) -> list[bytes]:
        """After the first byte: an OpenAI error event, and no [DONE]."""
        return [sse_event(error.body())]


class CompletionAssembler:
    """Collects frames into one `chat.completion` object (non-streaming clients)."""

    def __init__(self, request_id: str, model: str) -> None:
        self.request_id = request_id
        self.model = model
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}

    def add(self, frame: WireDelta) -> None:
        if frame.content:
            self.content.append(frame.content)
        if frame.reasoning_content:
            self.reasoning.append(frame.reasoning_content)
        for call in frame.tool_calls or ():
            entry = self.tool_calls.setdefault(
                call.index,
                {"id": call.id, "type": "function", "function": {"name": call.name or "", "arguments": ""}},
            )
            entry["id"] = entry["id"] or call.id
            if call.name and not entry["function"]["name"]:
                entry["function"]["name"] = call.name
            entry["function"]["arguments"] += call.arguments

    def build(self, done: DoneFrame, usage: UsageFrame | None) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(self.content) if self.content or not self.tool_calls else None,
            "refusal": None,
        }
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        body: dict[str, Any] = {
            "id": completion_id(self.request_id),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "system_fingerprint": None,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": done.finish_reason}
            ],
        }
        if usage is not None:
            body["usage"] = usage_object(usage.usage, usage.cost_usd)
        return body
