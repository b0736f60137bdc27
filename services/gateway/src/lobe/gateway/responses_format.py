"""Reply frames → the Responses API's wire format: its streamed events and its `response` object.

One state machine for both outputs (lobe.gateway.responses_output): the frames of a chat answer
become output items in the order they come (a `reasoning` item for reasoning text, a `message`
for text, a `function_call` per tool call), each opened, filled by deltas and closed as OpenAI
streams them; the non-streamed answer is the `response` object the stream's last event carries.
Shapes are the openai SDK's (openai.types.responses); services/gateway/tests/test_responses_format.py
validates every event against them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from lobe.gateway.responses_schema import ResponsesRequest
from lobe.shared.events.chat import DoneFrame, UsageFrame
from lobe.shared.events.chat_wire import WireDelta, WireToolCall
from lobe.shared.openai_errors import ApiError

Event = dict[str, Any]
# Finish reasons that leave a response incomplete, and the reason OpenAI gives.
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def response_id(request_id: str) -> str:
    return f"resp_{request_id}"


def usage_object(frame: UsageFrame) -> dict[str, Any]:
    usage = frame.usage
    body: dict[str, Any] = {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }
    if frame.cost_usd is not None:
        body["cost"] = frame.cost_usd  # as on a chat completion's usage (lobe.gateway.openai_format)
    return body


@dataclass
class _Item:
    """An output item being streamed: its kind, place, and what it has gathered."""

    kind: str  # message, reasoning or function_call
    index: int
    id: str
    text: list[str] = field(default_factory=list)
    call_index: int | None = None  # a function call's index among the answer's tool calls
    call_id: str = ""
    name: str = ""


class ResponseEvents:
    """One answer's Responses events, in order, each with its `sequence_number`."""

    def __init__(self, request_id: str, asked: ResponsesRequest) -> None:
        self.request_id = request_id
        self.asked = asked
        self.created_at = int(time.time())
        self.sequence = 0
        self.started = False
        self.output: list[dict[str, Any]] = []  # the closed items, as the response lists them
        self.open: _Item | None = None

    def start(self) -> list[Event]:
        """`response.created` and `response.in_progress`: once, before anything else."""
        if self.started:
            return []
        self.started = True
        response = self.response("in_progress", None)
        return [
            self._event("response.created", response=response),
            self._event("response.in_progress", response=response),
        ]

    def delta(self, frame: WireDelta) -> list[Event]:
        events = self.start()
        if frame.reasoning_content:
            events += self._into("reasoning", frame.reasoning_content)
        if frame.content:
            events += self._into("message", frame.content)
        for call in frame.tool_calls or ():
            events += self._call(call)
        return events

    def finish(self, done: DoneFrame, usage: UsageFrame | None) -> list[Event]:
        """The last events: the open item closed, then `response.completed` (or, for an answer
        cut short, `response.incomplete`) carrying the whole response and its usage."""
        events = self.start()
        if self.open is None and not self.output:
            events += self._open("message")  # an empty answer is still one (empty) message
        reason = INCOMPLETE.get(done.finish_reason)
        events += self._close("incomplete" if reason else "completed")
        response = self.response("incomplete" if reason else "completed", usage, reason)
        return [*events, self._event(f"response.{response['status']}", response=response)]

    def fail(self, error: ApiError) -> list[Event]:
        """After the first byte an error is an `error` event, then `response.failed`."""
        events = [*self.start(), *self._close("incomplete")]
        code = error.code or "server_error"
        events.append(self._event("error", code=code, message=error.message, param=error.param))
        failed = "rate_limit_exceeded" if error.status == 429 else "server_error"  # OpenAI's codes
        response = self.response("failed", None, error={"code": failed, "message": error.message})
        return [*events, self._event("response.failed", response=response)]

    def response(
        self,
        status: str,
        usage: UsageFrame | None,
        incomplete: str | None = None,
        error: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        asked = self.asked
        text = asked.text.model_dump(by_alias=True, exclude_none=True) if asked.text else None
        tool_choice: Any = asked.tool_choice or "auto"
        return {
            "id": response_id(self.request_id),
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": error,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "instructions": asked.instructions,
            "max_output_tokens": asked.max_output_tokens,
            "max_tool_calls": None,
            "model": asked.model,
            "output": list(self.output),
            "parallel_tool_calls": True if asked.parallel_tool_calls is None else asked.parallel_tool_calls,
            "previous_response_id": None,
            "reasoning": {"effort": asked.reasoning.effort if asked.reasoning else None, "summary": None},
            "store": False,
            "temperature": asked.temperature,
            "text": text or {"format": {"type": "text"}},
            "tool_choice": tool_choice if isinstance(tool_choice, str) else tool_choice.model_dump(),
            "tools": [tool.model_dump() for tool in asked.tools or ()],
            "top_p": asked.top_p,
            "truncation": "disabled",
            "usage": usage_object(usage) if usage is not None else None,
            "user": asked.user,
            "metadata": asked.metadata or {},
        }

    def _event(self, kind: str, **fields: Any) -> Event:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def _into(self, kind: str, text: str) -> list[Event]:
        events = (
            [] if self.open is not None and self.open.kind == kind else [*self._close(), *self._open(kind)]
        )
        item = self.open
        assert item is not None
        item.text.append(text)
        name = "response.output_text.delta" if kind == "message" else "response.reasoning_text.delta"
        extra: dict[str, Any] = {"logprobs": []} if kind == "message" else {}
        events.append(self._event(name, **self._where(item), content_index=0, delta=text, **extra))
        return events

    def _call(self, call: WireToolCall) -> list[Event]:
        item = self.open
        events: list[Event] = []
        if item is None or item.kind != "function_call" or item.call_index != call.index:
            events += [*self._close(), *self._open("function_call", call)]
            item = self.open
            assert item is not None
        item.name = item.name or call.name or ""  # some providers name the call after its first fragment
        if call.arguments:
            item.text.append(call.arguments)
            events.append(
                self._event(
                    "response.function_call_arguments.delta", **self._where(item), delta=call.arguments
                )
            )
        return events

    def _open(self, kind: str, call: WireToolCall | None = None) -> list[Event]:
        index = len(self.output)
        prefix = {"message": "msg", "reasoning": "rs", "function_call": "fc"}[kind]
        item = self.open = _Item(kind, index, f"{prefix}_{self.request_id}_{index}")
        if call is not None:
            item.call_index = call.index
            item.call_id = call.id or f"call_{self.request_id}_{call.index}"
            item.name = call.name or ""
        events = [
            self._event(
                "response.output_item.added", output_index=index, item=self._item(item, "in_progress")
            )
        ]
        if kind != "function_call":
            part = self._part(kind, "")
            events.append(
                self._event("response.content_part.added", **self._where(item), content_index=0, part=part)
            )
        return events

    def _close(self, status: str = "completed") -> list[Event]:
        item = self.open
        if item is None:
            return []
        self.open = None
        text = "".join(item.text)
        where = self._where(item)
        if item.kind == "function_call":
            events = [
                self._event("response.function_call_arguments.done", **where, arguments=text, name=item.name)
            ]
        else:
            name = "response.output_text.done" if item.kind == "message" else "response.reasoning_text.done"
            extra: dict[str, Any] = {"logprobs": []} if item.kind == "message" else {}
            part = self._part(item.kind, text)
            events = [
                self._event(name, **where, content_index=0, text=text, **extra),
                self._event("response.content_part.done", **where, content_index=0, part=part),
            ]
        done = self._item(item, status)
        self.output.append(done)
        return [*events, self._event("response.output_item.done", output_index=item.index, item=done)]

    def _item(self, item: _Item, status: str) -> dict[str, Any]:
        """The item as output_item events and the response show it: whole once `completed`."""
        text = "".join(item.text) if status != "in_progress" else ""
        if item.kind == "function_call":
            return {
                "id": item.id,
                "type": "function_call",
                "status": status,
                "call_id": item.call_id,
                "name": item.name,
                "arguments": text,
            }
        content = [] if status == "in_progress" else [self._part(item.kind, text)]
        if item.kind == "reasoning":
            return {"id": item.id, "type": "reasoning", "status": status, "summary": [], "content": content}
        return {"id": item.id, "type": "message", "status": status, "role": "assistant", "content": content}

    @staticmethod
    def _part(kind: str, text: str) -> dict[str, Any]:
        if kind == "reasoning":
            return {"type": "reasoning_text", "text": text}
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    @staticmethod
    def _where(item: _Item) -> dict[str, Any]:
        return {"item_id": item.id, "output_index": item.index}
