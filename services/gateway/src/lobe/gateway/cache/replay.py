"""A stored answer played back in place of a worker's dispatch.

The answer loop (lobe.gateway.answer) takes a replay's frames exactly as it takes a worker's, so a
cache hit has the shape of a live answer by construction: the same SSE chunks and usage chunk,
or the same JSON object. No worker is involved, so no cancel is ever sent and none owns the
request: the gateway records its usage itself, marked `cache_hit`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import msgspec
from pydantic import BaseModel

from lobe.shared.events.chat import CancelReason, DoneFrame, UsageFrame
from lobe.shared.events.chat_wire import ENCODE, WireDelta, decode_reply

StoredFrame = WireDelta | UsageFrame | DoneFrame
# A stored answer is a JSON array of reply frames, each decoded as the dispatch decodes it.
_FRAMES = msgspec.json.Decoder(list[msgspec.Raw]).decode


def encode_answer(frames: list[StoredFrame]) -> bytes:
    return b"[" + b",".join(_encode(frame) for frame in frames) + b"]"


def _encode(frame: msgspec.Struct | BaseModel) -> bytes:
    return frame.model_dump_json().encode() if isinstance(frame, BaseModel) else ENCODE(frame)


def decode_answer(stored: bytes) -> list[StoredFrame]:
    frames = [decode_reply(bytes(raw)) for raw in _FRAMES(stored)]
    for frame in frames:
        if not isinstance(frame, StoredFrame):
            raise ValueError(f"a stored answer holds a {type(frame).__name__}")
    return frames  # type: ignore[return-value]


class Replay:
    owner: str | None = None  # no worker owns a replayed answer
    accepted_at: float | None = None  # nor accepted it: the gateway's overhead is not observed

    def __init__(self, stored: bytes) -> None:
        self.stored = decode_answer(stored)
        self.usage = next((f for f in self.stored if isinstance(f, UsageFrame)), None)
        # The provider that answered, as its done frame names it (a usage frame may not).
        self.provider = next((f.provider for f in self.stored if isinstance(f, DoneFrame)), "unknown")

    async def frames(self) -> AsyncGenerator[StoredFrame, None]:
        for frame in self.stored:
            yield frame

    async def cancel(self, reason: CancelReason) -> None:
        """Nothing to stop: the answer is in memory."""
