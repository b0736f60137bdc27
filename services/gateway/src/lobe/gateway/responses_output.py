"""A Responses answer for the outputs every endpoint shares (lobe.gateway.outputs): its events as
server-sent events (`event: <type>` and the event's JSON; no `[DONE]`, as OpenAI's Responses stream
ends with its `response.completed`), or its `response` object.

Apart from the chat completion's chunks (lobe.gateway.openai_format): only what is written
differs; how it is written (opened on the first byte, batched at each flush) is the shared SseOutput's.
"""

from __future__ import annotations

import json
from typing import Any

from lobe.gateway.responses_format import Event, ResponseEvents
from lobe.shared.events.chat import DoneFrame, UsageFrame
from lobe.shared.events.chat_wire import WireDelta
from lobe.shared.openai_errors import ApiError

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def sse(event: Event) -> bytes:
    return f"event: {event['type']}\ndata: {_dumps(event)}\n\n".encode()


class ResponseChunks:
    """The SseOutput's ChunkSource for a streamed Responses answer: one item per event, so that a
    resumable stream numbers each (lobe.gateway.resume.output)."""

    def __init__(self, events: ResponseEvents) -> None:
        self.events = events

    def delta(self, frame: WireDelta) -> list[bytes]:
        return [sse(event) for event in self.events.delta(frame)]

    def end(self, done: DoneFrame, usage: UsageFrame | None) -> list[bytes]:
        return [sse(event) for event in self.events.finish(done, usage)]

    def error(self, error: ApiError) -> list[bytes]:
        return [sse(event) for event in self.events.fail(error)]


class ResponseAssembler:
    """The JsonOutput's Assembler: the `response` object the stream's last event would carry."""

    def __init__(self, events: ResponseEvents) -> None:
        self.events = events

    def add(self, frame: WireDelta) -> None:
        self.events.delta(frame)  # its events are not sent: the response gathers the output

    def build(self, done: DoneFrame, usage: UsageFrame | None) -> dict[str, Any]:
        response: dict[str, Any] = self.events.finish(done, usage)[-1]["response"]
        return response
