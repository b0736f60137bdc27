"""What a client of the gateway must see for a replayed provider transcript.

Each sidecar's `expected` is written in its provider's own terms; this turns it into OpenAI
terms by the same mapping the adapters implement (finish reasons, which tokens count as prompt
and completion). Nothing here is hard-coded per transcript: the numbers all come from the sidecar.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lobe.devtools.provider_fixtures import Transcript

ANTHROPIC_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}
GEMINI_FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter"}


@dataclass
class Expected:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning: str = ""
    tool_calls: list[tuple[str, Any]] = field(default_factory=list)  # (name, parsed arguments)


def expected_answer(transcript: Transcript) -> Expected:
    folder = transcript.name.split("/")[0]
    if folder == "anthropic":
        return _anthropic(transcript.expected)
    if folder == "gemini":
        return _gemini(transcript.expected)
    if folder == "ollama" and not transcript.name.endswith("v1_chat_completion.json"):
        return _ollama(transcript.expected)
    return _openai(transcript.expected)


def _openai(expected: dict[str, Any]) -> Expected:
    choice = expected["choices"][0] if "choices" in expected else expected
    usage = expected["usage"]
    details = usage.get("prompt_tokens_details") or {}
    return Expected(
        text=choice["text"],
        reasoning=choice.get("reasoning_text", ""),
        tool_calls=[(c["name"], c["arguments_parsed"]) for c in choice.get("tool_calls", [])],
        finish_reason=choice["finish_reason"],
        prompt_tokens=usage["prompt_tokens"],
        completion_tokens=usage["completion_tokens"],
        cached_tokens=details.get("cached_tokens") or usage.get("prompt_cache_hit_tokens") or 0,
    )


def _anthropic(expected: dict[str, Any]) -> Expected:
    usage = expected.get("usage_final") or expected["usage"]
    cache_read = usage.get("cache_read_input_tokens", 0)
    if "content_blocks" in expected:
        blocks = [b for b in expected["content_blocks"] if b["type"] == "tool_use"]
        calls = [(b["name"], b["input_parsed"]) for b in blocks]
    else:
        calls = [(b["name"], b["input"]) for b in expected.get("content", []) if b["type"] == "tool_use"]
    return Expected(
        text=expected.get("text", ""),
        tool_calls=calls,
        finish_reason=ANTHROPIC_FINISH[expected["stop_reason"]],
        # Anthropic counts cache reads and writes apart from input_tokens; OpenAI's prompt_tokens
        # includes them.
        prompt_tokens=usage["input_tokens"] + cache_read + usage.get("cache_creation_input_tokens", 0),
        completion_tokens=usage["output_tokens"],
        cached_tokens=cache_read,
    )


def _gemini(expected: dict[str, Any]) -> Expected:
    usage = expected.get("usage_final", expected.get("usage"))
    assert usage is not None, "a transcript without usageMetadata"
    calls = [(c["name"], c["args"]) for c in expected.get("function_calls", [])]
    if (expected.get("prompt_feedback") or {}).get("blockReason"):
        finish = "content_filter"
    else:
        finish = "tool_calls" if calls else GEMINI_FINISH[expected["finish_reason"]]
    return Expected(
        text=expected["text"],
        reasoning=expected.get("thought_text", ""),
        tool_calls=calls,
        finish_reason=finish,
        prompt_tokens=usage["promptTokenCount"],
        # Thinking tokens are billed as output: they count as completion tokens.
        completion_tokens=usage.get("candidatesTokenCount", 0) + usage.get("thoughtsTokenCount", 0),
        cached_tokens=usage.get("cachedContentTokenCount", 0),
    )


def _ollama(expected: dict[str, Any]) -> Expected:
    calls = [(c["function"]["name"], c["function"]["arguments"]) for c in expected.get("tool_calls", [])]
    usage = expected["final_usage_fields"]
    return Expected(
        text=expected["text"],
        tool_calls=calls,
        finish_reason="tool_calls"
        if calls
        else ("length" if expected["done_reason"] == "length" else "stop"),
        prompt_tokens=usage["prompt_eval_count"],
        completion_tokens=usage["eval_count"],
    )
