"""Chat Completions SSE (OpenAI and every server that imitates it) → stream events.

Tolerates the dialects seen in real transcripts: reasoning in `reasoning_content` (DeepSeek) or
`reasoning` (Groq, OpenRouter, Ollama /v1); `content` as a list of typed parts with `thinking`
(Mistral); usage on the finish chunk instead of a separate one (Groq, DeepSeek, Mistral); chunks
with no choices or no delta (Azure's filter annotations); SSE comments (OpenRouter keep-alives);
errors as `event: error` (Groq) or an `error` member inside a chunk (OpenRouter, OpenAI SDK rule).

`Finished` is held back until `[DONE]` (or a clean end of body after a finish reason) so that a
stream cut after its finish chunk is never reported as complete.
"""

from __future__ import annotations

from typing import Any

from lobe.chat_worker.http.upstream import TransportError
from lobe.chat_worker.providers.base import Finished, ProviderError, ReasoningDelta, StreamEvent, TextDelta
from lobe.chat_worker.providers.errors import as_code, upstream_error
from lobe.chat_worker.providers.framed import FramedStreamParser, json_object
from lobe.chat_worker.providers.sse import SSEDecoder, SSEEvent
from lobe.shared.events.chat import FinishReason, TokenUsage, ToolCallDelta

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def openai_usage(usage: dict[str, Any]) -> TokenUsage:
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return TokenUsage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        # DeepSeek reports cache hits under its own name as well.
        cached_tokens=int(prompt_details.get("cached_tokens") or usage.get("prompt_cache_hit_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
        basis="provider",
    )


def inline_error(provider: str, error: Any) -> ProviderError:
    """`{"error": {...}}` inside a 200 stream or an error body, in the OpenAI family's shapes."""
    if not isinstance(error, dict):
        return upstream_error(provider, 500, None, str(error))
    code = error.get("code")
    status = error.get("status_code") or error.get("status")
    if not isinstance(status, int) and isinstance(code, int):
        status = code  # OpenRouter: the numeric code is the HTTP status
    if not isinstance(status, int) or not 400 <= status <= 599:
        status = 500
    name = as_code(code) if isinstance(code, str) else as_code(error.get("type"))
    return upstream_error(provider, status, name, str(error.get("message") or ""))


def split_content(content: Any) -> tuple[str, str]:
    """(text, reasoning) from a `content` that is a string or Mistral's list of typed parts."""
    if isinstance(content, str):
        return content, ""
    text: list[str] = []
    reasoning: list[str] = []
    for part in content or ():
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            text.append(str(part.get("text") or ""))
        elif part.get("type") == "thinking":
            for inner in part.get("thinking") or ():
                if isinstance(inner, dict):
                    reasoning.append(str(inner.get("text") or ""))
    return "".join(text), "".join(reasoning)


class OpenAIStreamParser(FramedStreamParser[SSEEvent]):
    def __init__(self, provider: str, fallback_model: str) -> None:
        self.provider = provider
        self.decoder = SSEDecoder()
        self.model = ""
        self.fallback_model = fallback_model
        self.finish: str | None = None
        self.usage: TokenUsage | None = None
        self.done = False
        self.saw_tool_call = False

    def document(self, raw: bytes) -> list[StreamEvent]:
        doc = json_object(raw, "chat completion")
        if "error" in doc:
            raise inline_error(self.provider, doc["error"])
        out: list[StreamEvent] = []
        self.model = str(doc.get("model") or "")
        for choice in doc.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            message = choice.get("message") or {}
            self._delta(message, out, whole=True)
            self.finish = choice.get("finish_reason") or self.finish
        if doc.get("usage"):
            self.usage = openai_usage(doc["usage"])
        return self._final(out)

    def _check_complete(self) -> None:
        if not self.done and self.finish is None:
            raise TransportError(502, "upstream_truncated", "stream ended before a finish reason or [DONE]")

    def _final(self, out: list[StreamEvent]) -> list[StreamEvent]:
        reason = FINISH_REASONS.get(self.finish or "stop", "stop")
        if reason == "stop" and self.saw_tool_call:
            reason = "tool_calls"  # some servers say "stop" after a tool call; clients key off this
        out.append(Finished(reason=reason, model=self.model or self.fallback_model))
        if self.usage is not None:
            out.append(self.usage)
        return out

    def _frame(self, frame: SSEEvent, out: list[StreamEvent]) -> None:
        if self.done:
            return
        if frame.data == "[DONE]":
            self.done = True
            return
        chunk = json_object(frame.data, f"{self.provider} chunk")
        if chunk.get("usage"):
            self.usage = openai_usage(chunk["usage"])
        if frame.event == "error" or chunk.get("error"):
            # An error after the finish reason (OpenRouter's "Token limit reached" next to a
            # `length` finish) does not undo a complete answer; before it, the answer failed.
            if self.finish is None:
                raise inline_error(self.provider, chunk.get("error", chunk))
            return
        if not self.model and chunk.get("model"):
            self.model = str(chunk["model"])
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # n is always 1 here; Azure numbers annotation choices the same way
            delta = choice.get("delta")
            if delta:
                self._delta(delta, out, whole=False)
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]

    def _delta(self, delta: dict[str, Any], out: list[StreamEvent], *, whole: bool) -> None:
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and isinstance(reasoning, str):
            out.append(ReasoningDelta(reasoning))
        text, thinking = split_content(delta.get("content"))
        if thinking:
            out.append(ReasoningDelta(thinking))
        if text:
            out.append(TextDelta(text))
        if delta.get("refusal"):
            # Our frames have no refusal field: the refusal is the answer the user should read.
            out.append(TextDelta(str(delta["refusal"])))
        for position, call in enumerate(delta.get("tool_calls") or ()):
            function = call.get("function") or {}
            self.saw_tool_call = True
            out.append(
                ToolCallDelta(
                    index=call.get("index", position) if not whole else position,
                    id=call.get("id"),
                    name=function.get("name"),
                    arguments=function.get("arguments") or "",
                )
            )
