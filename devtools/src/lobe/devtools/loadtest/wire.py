"""The fake upstream's bytes: each answer encoded once per model, as OpenAI streams it."""

from __future__ import annotations

import json
import time
from typing import Any

from lobe.devtools.loadtest.shape import PROMPT_TOKENS, Shape, text_of


def _sse(payload: dict[str, Any]) -> bytes:
    data = b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)  # one HTTP chunk per event, as providers send them


def _usage(shape: Shape) -> dict[str, int]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": shape.chunks,
        "total_tokens": PROMPT_TOKENS + shape.chunks,
    }


class Answers:
    """The encoded answer pieces per model name, built on first use."""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self._streams: dict[str, tuple[bytes, list[bytes], bytes]] = {}
        self._objects: dict[str, bytes] = {}

    def stream(self, model: str) -> tuple[bytes, list[bytes], bytes]:
        """(head with the role chunk, one piece per content delta, the tail from finish to end)."""
        if model not in self._streams:
            base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time())}
            base["model"] = model

            def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
                choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                return _sse({**base, "choices": [choice]})

            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            head += chunk({"role": "assistant", "content": ""})
            deltas = [chunk({"content": text_of(i)}) for i in range(self.shape.chunks)]
            tail = chunk({}, "stop") + _sse({**base, "choices": [], "usage": _usage(self.shape)})
            tail += b"%x\r\ndata: [DONE]\n\n\r\n0\r\n\r\n" % len(b"data: [DONE]\n\n")
            self._streams[model] = (head, deltas, tail)
        return self._streams[model]

    def whole(self, model: str) -> bytes:
        if model not in self._objects:
            message = {"role": "assistant", "content": self.shape.text}
            body = json.dumps(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
                    "usage": _usage(self.shape),
                },
                separators=(",", ":"),
            ).encode()
            self._objects[model] = response(200, "application/json", body)
        return self._objects[model]


def response(status: int, content_type: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body
