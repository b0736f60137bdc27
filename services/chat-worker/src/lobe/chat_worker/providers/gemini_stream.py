"""Gemini `streamGenerateContent?alt=sse` → stream events.

Every chunk is a whole GenerateContentResponse; usage is cumulative and only the last chunk's
counts are final. There is no terminator: a finish reason (or a blocked prompt) followed by a
clean end of body is success. Gemini can write a bare, un-framed JSON error after the last event;
the SSE decoder keeps such lines and this parser raises them as the provider error they are.
"""

from __future__ import annotations

import json
from typing import Any

from lobe.chat_worker.http.upstream import TransportError
from lobe.chat_worker.providers.base import Finished, ProviderError, ReasoningDelta, StreamEvent, TextDelta
from lobe.chat_worker.providers.errors import upstream_error
from lobe.chat_worker.providers.framed import FramedStreamParser, json_object
from lobe.chat_worker.providers.sse import FramingError, SSEDecoder, SSEEvent
from lobe.shared.events.chat import FinishReason, TokenUsage, ToolCallDelta

FILTERED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
RPC_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 500,  # server-side cancellation: transient, worth another attempt
    "INTERNAL": 500,
    "UNKNOWN": 500,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


def gemini_usage(meta: dict[str, Any]) -> TokenUsage:
    # Thoughts are billed as output but not counted in candidatesTokenCount.
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    return TokenUsage(
        prompt_tokens=int(meta.get("promptTokenCount") or 0) + int(meta.get("toolUsePromptTokenCount") or 0),
        completion_tokens=int(meta.get("candidatesTokenCount") or 0) + thoughts,
        cached_tokens=int(meta.get("cachedContentTokenCount") or 0),
        reasoning_tokens=thoughts,
        basis="provider",
    )


def gemini_error(error: Any, http_status: int | None = None) -> ProviderError:
    error = error if isinstance(error, dict) else {"message": str(error)}
    rpc = str(error.get("status") or "")
    reasons = {d.get("reason") for d in error.get("details") or () if isinstance(d, dict)}
    status = 401 if "API_KEY_INVALID" in reasons else RPC_STATUS.get(rpc) or http_status
    if not isinstance(status, int):
        status = error.get("code") if isinstance(error.get("code"), int) else 500
    return upstream_error("gemini", status, rpc or None, str(error.get("message") or ""))


class GeminiStreamParser(FramedStreamParser[SSEEvent]):
    decoder: SSEDecoder  # its `unframed` lines may be the provider's error

    def __init__(self, fallback_model: str) -> None:
        self.decoder = SSEDecoder()
        self.model = fallback_model
        self.finish: str | None = None
        self.blocked = False
        self.usage: dict[str, Any] | None = None
        self.calls = 0
        self._unframed_seen = 0

    def feed(self, data: bytes) -> list[StreamEvent]:
        out = super().feed(data)
        if len(self.decoder.unframed) != self._unframed_seen:
            self._unframed_seen = len(self.decoder.unframed)
            self._raise_unframed(final=False)
        return out

    def document(self, raw: bytes) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        self._chunk(json_object(raw, "gemini response"), out)
        return self._final(out)

    def _frame(self, frame: SSEEvent, out: list[StreamEvent]) -> None:
        self._chunk(json_object(frame.data, "gemini chunk"), out)

    def _check_complete(self) -> None:
        if self.decoder.unframed:
            self._raise_unframed(final=True)
        if self.finish is None and not self.blocked:
            raise TransportError(502, "upstream_truncated", "stream ended without a finishReason")

    def _final(self, out: list[StreamEvent]) -> list[StreamEvent]:
        reason: FinishReason = "stop"
        if self.blocked or self.finish in FILTERED:
            reason = "content_filter"
        elif self.finish == "MAX_TOKENS":
            reason = "length"
        elif self.calls:
            reason = "tool_calls"
        out.append(Finished(reason=reason, model=self.model))
        if self.usage is not None:
            out.append(gemini_usage(self.usage))
        return out

    def _raise_unframed(self, *, final: bool) -> None:
        text = "\n".join(self.decoder.unframed)
        try:
            doc = json.loads(text)
        except ValueError:
            if final:
                raise FramingError(f"malformed gemini stream: unframed text {text[:200]!r}") from None
            return  # the object may still be arriving
        if isinstance(doc, dict) and "error" in doc:
            raise gemini_error(doc["error"])
        raise FramingError(f"malformed gemini stream: unframed text {text[:200]!r}")

    def _chunk(self, chunk: dict[str, Any], out: list[StreamEvent]) -> None:
        if "error" in chunk:
            raise gemini_error(chunk["error"])
        if chunk.get("modelVersion"):
            self.model = str(chunk["modelVersion"])
        if chunk.get("usageMetadata"):
            self.usage = chunk["usageMetadata"]
        if (chunk.get("promptFeedback") or {}).get("blockReason"):
            self.blocked = True
        for candidate in (chunk.get("candidates") or ())[:1]:
            for part in (candidate.get("content") or {}).get("parts") or ():
                self._part(part, out)
            if candidate.get("finishReason"):
                self.finish = str(candidate["finishReason"])

    def _part(self, part: dict[str, Any], out: list[StreamEvent]) -> None:
        if "text" in part:
            if part["text"]:
                out.append(ReasoningDelta(part["text"]) if part.get("thought") else TextDelta(part["text"]))
        elif "functionCall" in part:
            call = part["functionCall"] or {}
            # Gemini sends whole calls, often without an id; clients need one to answer with.
            call_id = call.get("id") or f"call_{self.calls}"
            arguments = json.dumps(call.get("args") or {}, ensure_ascii=False)
            out.append(
                ToolCallDelta(index=self.calls, id=call_id, name=call.get("name"), arguments=arguments)
            )
            self.calls += 1
