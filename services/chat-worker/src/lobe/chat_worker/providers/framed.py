"""The shell every stream parser shares: body bytes → frames (SSE events, NDJSON lines) → events.

The decoders already handle arbitrary splits, so `feed()` and `close()` are the same loop for every
wire format; a parser states only what is its own: what one frame means, what a complete answer
is, and the events that close it.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, Generic, Protocol, TypeVar

from lobe.chat_worker.providers.base import StreamEvent
from lobe.chat_worker.providers.http_base import StreamParser
from lobe.chat_worker.providers.sse import FramingError

FrameT = TypeVar("FrameT")
FrameT_co = TypeVar("FrameT_co", covariant=True)


class FrameDecoder(Protocol[FrameT_co]):
    """SSEDecoder, NDJSONDecoder: frames completed by each chunk, then the rest at end of body."""

    def feed(self, chunk: bytes) -> Sequence[FrameT_co]: ...

    def close(self) -> Sequence[FrameT_co]: ...


class FramedStreamParser(StreamParser, Generic[FrameT]):
    decoder: FrameDecoder[FrameT]

    def feed(self, data: bytes) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for frame in self.decoder.feed(data):
            self._frame(frame, out)
        return out

    def close(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for frame in self.decoder.close():
            self._frame(frame, out)
        self._check_complete()
        return self._final(out)

    @abstractmethod
    def _frame(self, frame: FrameT, out: list[StreamEvent]) -> None:
        """Append the events one frame carries; raise ProviderError for an in-stream error."""

    @abstractmethod
    def _check_complete(self) -> None:
        """The body ended cleanly: raise (TransportError `upstream_truncated`) unless the answer's
        end was seen, so that a cut stream is never reported as complete."""

    @abstractmethod
    def _final(self, out: list[StreamEvent]) -> list[StreamEvent]:
        """`out` followed by `Finished` (and `TokenUsage` when the provider reported it)."""


def json_object(data: str | bytes, what: str) -> dict[str, Any]:
    """`data` parsed as a JSON object; otherwise a FramingError naming `what` and quoting `data`."""
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise FramingError(f"malformed {what}: {str(data)[:200]!r} ({exc})") from exc
    if not isinstance(value, dict):
        raise FramingError(f"malformed {what}: expected a JSON object, got {str(data)[:200]!r}")
    return value
