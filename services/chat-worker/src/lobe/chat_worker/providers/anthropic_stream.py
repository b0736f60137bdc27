"""Anthropic Messages SSE → stream events.

Content blocks are numbered across text, thinking and tool_use; OpenAI numbers only tool calls,
so tool_use blocks get their own 0-based index. Usage is `message_start.usage` overlaid with the
cumulative `message_delta.usage`. An `error` event (e.g. `overloaded_error`, HTTP 529's streaming
counterpart) ends the answer as a failure; only `message_stop` ends it as a success.
"""

from __future__ import annotations

import json
from typing import Any

from lobe.chat_worker.http.upstream import TransportError
from lobe.chat_worker.providers.base import Finished, ProviderError, ReasoningDelta, StreamEvent, TextDelta
from lobe.chat_worker.providers.errors import ANTHROPIC_ERROR_STATUS, upstream_error
from lobe.chat_worker.providers.framed import FramedStreamParser, json_object
from lobe.chat_worker.providers.sse import SSEDecoder, SSEEvent
from lobe.shared.events.chat import FinishReason, TokenUsage, ToolCallDelta

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def anthropic_usage(usage: dict[str, Any]) -> TokenUsage:
    cache_read = int(usage.get("cache_read_input_tokens") or 0)
    cache_write = int(usage.get("cache_creation_input_tokens") or 0)
    return TokenUsage(
        prompt_tokens=int(usage.get("input_tokens") or 0) + cache_read + cache_write,
        completion_tokens=int(usage.get("output_tokens") or 0),
        cached_tokens=cache_read,
        basis="provider",
    )


def anthropic_error(error: Any, status: int | None = None) -> ProviderError:
    error = error if isinstance(error, dict) else {"message": str(error)}
    kind = str(error.get("type") or "api_error")
    return upstream_error(
        "anthropic", status or ANTHROPIC_ERROR_STATUS.get(kind, 500), kind, str(error.get("message") or "")
    )


class AnthropicStreamParser(FramedStreamParser[SSEEvent]):
    def __init__(self, fallback_model: str) -> None:
        self.decoder = SSEDecoder()
        self.model = fallback_model
        self.usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.stopped = False
        self.tool_index: dict[int, int] = {}

    def document(self, raw: bytes) -> list[StreamEvent]:
        doc = json_object(raw, "anthropic message")
        if doc.get("type") == "error":
            raise anthropic_error(doc.get("error"))
        out: list[StreamEvent] = []
        self.model = str(doc.get("model") or self.model)
        for index, block in enumerate(doc.get("content") or ()):
            self._block_start(index, block, out)
            if block.get("type") == "tool_use":
                arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
                out.append(ToolCallDelta(index=self.tool_index[index], arguments=arguments))
        self.usage = dict(doc.get("usage") or {})
        self.stop_reason = doc.get("stop_reason")
        return self._final(out)

    def _check_complete(self) -> None:
        if not self.stopped:
            raise TransportError(502, "upstream_truncated", "stream ended before message_stop")

    def _final(self, out: list[StreamEvent]) -> list[StreamEvent]:
        out.append(
            Finished(reason=STOP_REASONS.get(self.stop_reason or "end_turn", "stop"), model=self.model)
        )
        if self.usage:
            out.append(anthropic_usage(self.usage))
        return out

    def _frame(self, frame: SSEEvent, out: list[StreamEvent]) -> None:
        if self.stopped:
            return
        name = frame.event
        payload = json_object(frame.data, f"anthropic {name or 'message'} event")
        kind = payload.get("type") or name
        if kind == "content_block_delta":
            delta = payload.get("delta") or {}
            index = payload.get("index", 0)
            dtype = delta.get("type")
            if dtype == "text_delta":
                out.append(TextDelta(delta.get("text") or ""))
            elif dtype == "input_json_delta" and index in self.tool_index:
                out.append(
                    ToolCallDelta(index=self.tool_index[index], arguments=delta.get("partial_json") or "")
                )
            elif dtype == "thinking_delta":
                out.append(ReasoningDelta(delta.get("thinking") or ""))
        elif kind == "content_block_start":
            self._block_start(payload.get("index", 0), payload.get("content_block") or {}, out)
        elif kind == "message_start":
            message = payload.get("message") or {}
            self.model = str(message.get("model") or self.model)
            self.usage = dict(message.get("usage") or {})
        elif kind == "message_delta":
            self.stop_reason = (payload.get("delta") or {}).get("stop_reason") or self.stop_reason
            self.usage.update(payload.get("usage") or {})
        elif kind == "message_stop":
            self.stopped = True
        elif kind == "error":
            raise anthropic_error(payload.get("error"))
        # ping, content_block_stop and event types added later carry nothing we forward.

    def _block_start(self, index: int, block: dict[str, Any], out: list[StreamEvent]) -> None:
        btype = block.get("type")
        if btype == "tool_use":
            self.tool_index[index] = len(self.tool_index)
            out.append(
                ToolCallDelta(index=self.tool_index[index], id=block.get("id"), name=block.get("name"))
            )
        elif btype == "text" and block.get("text"):
            out.append(TextDelta(block["text"]))
        elif btype == "thinking" and block.get("thinking"):
            out.append(ReasoningDelta(block["thinking"]))
