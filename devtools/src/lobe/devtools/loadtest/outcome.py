"""One request's outcome, and the check that its answer is exactly what the fake upstream sent."""

from __future__ import annotations

from dataclasses import dataclass, field

from lobe.devtools.loadtest.shape import PROMPT_TOKENS, Shape


@dataclass(slots=True)
class Outcome:
    """Times in seconds on time.perf_counter's clock. Latencies count from `due`: in an open loop
    the moment the request was scheduled, so a late send (the client or the suite falling behind)
    is charged to the request instead of hidden (no coordinated omission)."""

    due: float
    ttft_s: float | None = None  # first non-empty content delta
    total_s: float = 0.0  # terminal frame / end of body
    error: str | None = None  # None: a complete answer that passed every check

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class AnswerCheck:
    """Collects one answer as it arrives; `verdict()` names the first way it differs from `shape`.

    `coalesced` accepts fewer, larger deltas (a path that batches chunks) as long as the text is
    the same; otherwise every delta must arrive as its own chunk."""

    shape: Shape
    coalesced: bool = False
    parts: list[str] = field(default_factory=list)
    finish: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def add(self, content: str) -> bool:
        """Record a content delta; True when it is the answer's first."""
        self.parts.append(content)
        return len(self.parts) == 1

    def verdict(self) -> str | None:
        text = "".join(self.parts)
        if text != self.shape.text:
            return f"content: got {_clip(text)!r}, expected {_clip(self.shape.text)!r}"
        count, expected = len(self.parts), self.shape.chunks
        if count != expected and not (self.coalesced and 0 < count <= expected):
            return f"chunks: got {count}, expected {expected}"
        if self.finish != "stop":
            return f"finish_reason: got {self.finish!r}, expected 'stop'"
        if self.prompt_tokens is None:
            return "usage: missing"
        if (self.prompt_tokens, self.completion_tokens) != (PROMPT_TOKENS, expected):
            return (
                f"usage: got {self.prompt_tokens}+{self.completion_tokens} tokens, "
                f"expected {PROMPT_TOKENS}+{expected}"
            )
        return None


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
