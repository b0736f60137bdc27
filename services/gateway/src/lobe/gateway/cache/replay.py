"""A stored answer played back in place of a worker's dispatch.

The answer loop (lobe.gateway.answer) takes a replay's frames exactly as it takes a worker's, so a
cache hit has the shape of a live answer by construction: the same SSE chunks and usage chunk,
or the same JSON object. No worker is involved, so no cancel is ever sent and none owns the
request: the gateway records its usage itself, marked `cache_hit`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

from pydantic import Field, TypeAdapter

from lobe.shared.events.chat import CancelReason, DeltaFrame, DoneFrame, UsageFrame

StoredFrame = Annotated[DeltaFrame | UsageFrame | DoneFrame, Field(discriminator="type")]
STORED_ANSWER: TypeAdapter[list[StoredFrame]] = TypeAdapter(list[StoredFrame])


def encode_answer(frames: list[DeltaFrame | UsageFrame | DoneFrame]) -> bytes:
    return STORED_ANSWER.dump_json(frames)


class Replay:
    owner: str | None = None  # no worker owns a replayed answer
    accepted_at: float | None = None  # nor accepted it: the gateway's overhead is not observed

    def __init__(self, stored: bytes) -> None:
        self.stored = STORED_ANSWER.validate_json(stored)
        self.usage = next((f for f in self.stored if isinstance(f, UsageFrame)), None)
        # The provider that answered, as its done frame names it (a usage frame may not).
        self.provider = next((f.provider for f in self.stored if isinstance(f, DoneFrame)), "unknown")

    async def frames(self) -> AsyncGenerator[DeltaFrame | UsageFrame | DoneFrame, None]:
        for frame in self.stored:
            yield frame

    async def cancel(self, reason: CancelReason) -> None:
        """Nothing to stop: the answer is in memory."""
