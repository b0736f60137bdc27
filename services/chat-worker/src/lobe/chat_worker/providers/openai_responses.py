"""OpenAI's own Responses API upstream (`POST /v1/responses`, streamed), for deployments marked
`responses: native` (docs/responses.md): a Responses request is sent to the provider as one, so
its reasoning summaries and usage (reasoning tokens, cached tokens) are the provider's.

The gateway hands the worker a chat request (it translated the client's Responses request to
run it through the same edge and routing); this turns it back into a Responses body, and the
provider's Responses events into the stream events every adapter yields, which the gateway
renders as Responses events again. Nothing is stored upstream (`store: false`), as nothing is
stored here.
"""

from __future__ import annotations

from typing import Any

from lobe.chat_worker.http.upstream import TransportError
from lobe.chat_worker.providers.base import Finished, ReasoningDelta, StreamEvent, TextDelta
from lobe.chat_worker.providers.framed import FramedStreamParser, json_object
from lobe.chat_worker.providers.openai_stream import inline_error
from lobe.chat_worker.providers.sse import SSEDecoder, SSEEvent
from lobe.shared.chat_schema import (
    AssistantMessage,
    ChatCompletionRequest,
    ImagePart,
    Message,
    ToolMessage,
)
from lobe.shared.events.chat import FinishReason, TokenUsage, ToolCallDelta

# response.incomplete's reason as a chat finish reason.
INCOMPLETE: dict[str, FinishReason] = {"max_output_tokens": "length", "content_filter": "content_filter"}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content or () if not isinstance(part, ImagePart))


def _input_items(message: Message) -> list[dict[str, Any]]:
    """One chat message as Responses input items (a message, function calls, a call's output)."""
    if isinstance(message, ToolMessage):
        return [
            {
                "type": "function_call_output",
                "call_id": message.tool_call_id,
                "output": _text(message.content),
            }
        ]
    if isinstance(message, AssistantMessage):
        items: list[dict[str, Any]] = []
        if message.content:
            items.append({"role": "assistant", "content": _text(message.content)})
        for call in message.tool_calls or ():
            function = call.function
            items.append(
                {
                    "type": "function_call",
                    "call_id": call.id,
                    "name": function.name,
                    "arguments": function.arguments,
                }
            )
        return items
    if isinstance(message.content, str):
        return [{"role": message.role, "content": message.content}]
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, ImagePart):
            image: dict[str, Any] = {"type": "input_image", "image_url": part.image_url.url}
            image["detail"] = part.image_url.detail or "auto"
            parts.append(image)
        else:
            parts.append({"type": "input_text", "text": part.text})
    return [{"role": message.role, "content": parts}]


def _text_format(body: ChatCompletionRequest) -> dict[str, Any] | None:
    chosen = body.response_format
    if chosen is None or chosen.type == "text":
        return None
    if chosen.type == "json_object":
        return {"format": {"type": "json_object"}}
    spec = chosen.json_schema.model_dump(mode="json", exclude_none=True, by_alias=True)
    return {"format": {"type": "json_schema", **spec}}


def responses_body(body: ChatCompletionRequest, model: str, *, forward_user: bool) -> dict[str, Any]:
    """The chat request as OpenAI's Responses request, streamed and not stored."""
    payload: dict[str, Any] = {
        "model": model,
        "input": [item for message in body.messages for item in _input_items(message)],
        "stream": True,
        "store": False,
    }
    options = {
        "max_output_tokens": body.output_token_limit,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "parallel_tool_calls": body.parallel_tool_calls,
        "user": body.user if forward_user else None,
        "text": _text_format(body),
        "reasoning": {"effort": body.reasoning_effort} if body.reasoning_effort else None,
    }
    payload.update({key: value for key, value in options.items() if value is not None})
    if body.tools:
        payload["tools"] = [
            {"type": "function", **tool.function.model_dump(mode="json", exclude_none=True)}
            for tool in body.tools
        ]
    if isinstance(body.tool_choice, str):
        payload["tool_choice"] = body.tool_choice
    elif body.tool_choice is not None:
        payload["tool_choice"] = {"type": "function", "name": body.tool_choice.function.name}
    return payload


def responses_usage(usage: dict[str, Any]) -> TokenUsage:
    input_details = usage.get("input_tokens_details") or {}
    output_details = usage.get("output_tokens_details") or {}
    return TokenUsage(
        prompt_tokens=int(usage.get("input_tokens") or 0),
        completion_tokens=int(usage.get("output_tokens") or 0),
        cached_tokens=int(input_details.get("cached_tokens") or 0),
        reasoning_tokens=int(output_details.get("reasoning_tokens") or 0),
        basis="provider",
    )


class ResponsesStreamParser(FramedStreamParser[SSEEvent]):
    """Responses SSE → stream events: output text, reasoning (summary or full text), function
    calls (numbered in the order the provider added them), then `Finished` and the usage of
    `response.completed` or `response.incomplete`. A stream without either never completes."""

    def __init__(self, provider: str, fallback_model: str) -> None:
        self.provider = provider
        self.fallback_model = fallback_model
        self.decoder = SSEDecoder()
        self.model = ""
        self.finish: FinishReason | None = None
        self.usage: TokenUsage | None = None
        self.calls: dict[int, int] = {}  # output_index → tool call index

    def _frame(self, frame: SSEEvent, out: list[StreamEvent]) -> None:
        if self.finish is not None or not frame.data:
            return
        event = json_object(frame.data, f"{self.provider} Responses event")
        kind = event.get("type") or frame.event
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            out.append(TextDelta(str(event["delta"])))
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            out.append(ReasoningDelta(str(event["delta"])))
        elif kind == "response.output_item.added" and event["item"].get("type") == "function_call":
            item = event["item"]
            index = self.calls.setdefault(int(event["output_index"]), len(self.calls))
            out.append(
                ToolCallDelta(
                    index=index,
                    id=item.get("call_id"),
                    name=item.get("name"),
                    arguments=item.get("arguments") or "",
                )
            )
        elif kind == "response.function_call_arguments.delta":
            index = self.calls[int(event["output_index"])]
            out.append(ToolCallDelta(index=index, id=None, name=None, arguments=str(event["delta"])))
        elif kind in ("response.created", "response.in_progress"):
            self.model = str(event["response"].get("model") or self.model)
        elif kind in ("response.completed", "response.incomplete"):
            self._ended(event["response"], kind)
        elif kind in ("error", "response.failed"):
            error = event["response"].get("error") if kind == "response.failed" else event
            raise inline_error(self.provider, error or {})

    def _ended(self, response: dict[str, Any], kind: str) -> None:
        self.model = str(response.get("model") or self.model)
        if response.get("usage"):
            self.usage = responses_usage(response["usage"])
        if kind == "response.incomplete":
            reason = str((response.get("incomplete_details") or {}).get("reason") or "")
            self.finish = INCOMPLETE.get(reason, "length")
        else:
            self.finish = "tool_calls" if self.calls else "stop"

    def _check_complete(self) -> None:
        if self.finish is None:
            raise TransportError(
                502, "upstream_truncated", "Responses stream ended before response.completed"
            )

    def _final(self, out: list[StreamEvent]) -> list[StreamEvent]:
        out.append(Finished(reason=self.finish or "stop", model=self.model or self.fallback_model))
        if self.usage is not None:
            out.append(self.usage)
        return out
