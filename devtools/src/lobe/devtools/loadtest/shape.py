"""What the fake upstream answers, and therefore what every answer through the suite must be.

One definition for both sides: the upstream (`lobe.devtools.loadtest.upstream`) streams
`chunks` content deltas of `text_of(i)`, then a `stop` finish and a usage chunk; the load
generator checks each answer against the same shape (content, chunk count, finish, usage).
"""

from __future__ import annotations

from dataclasses import dataclass

PROMPT_TOKENS = 9  # the fake upstream's count for any prompt: the usage every answer must report
MODEL = "bench"  # the public model `lobe dev --fake-upstream` routes to the fake upstream
PROMPT = "Count for the load test."


def text_of(index: int) -> str:
    """The content of delta `index`: distinct per position, so a lost or reordered one shows."""
    return f"t{index} "


@dataclass(frozen=True)
class Shape:
    chunks: int = 20
    ttft_s: float = 0.0  # before the first content delta
    tokens_per_s: float = 0.0  # pace of the deltas after the first; 0: as fast as the socket takes them

    @property
    def text(self) -> str:
        return "".join(text_of(i) for i in range(self.chunks))

    @property
    def gap_s(self) -> float:
        return 1.0 / self.tokens_per_s if self.tokens_per_s > 0 else 0.0

    def describe(self) -> str:
        pace = f"{self.tokens_per_s:g} tokens/s" if self.tokens_per_s else "no delay between chunks"
        return f"{self.chunks} chunks, TTFT {self.ttft_s * 1000:g} ms, {pace}"
