"""A reply stream: the messages of one concrete reply subject, read in arrival order by the one
asker that subscribed (the gateway reading a worker's answer frames on `chat.reply.<id>.<offer>`).

The subscription's callback only queues the body; the reader decodes it into the catalog's
payload model when it takes it, so a frame costs one queue put and one decode, as the raw
callback did (tests/bench/dispatch_frames.py). A body that does not decode raises
ValidationError to the reader: in a stream, a lost or garbled message is the reader's to fail on,
not something to skip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from lobe.shared.bus.responder import decoder
from lobe.shared.catalog import Subject

OnMessage = Callable[[Any], Awaitable[None]]  # a message with .subject, .data, .headers (nats.py's Msg)


class Listening(Protocol):
    """A subscription without a queue group, as `_listen` returns it (nats.py's Subscription)."""

    async def unsubscribe(self, limit: int = 0) -> None: ...


class Replies:
    def __init__(self, entry: Subject, subject: str) -> None:
        self.subject = subject
        self.listening: Listening | None = None
        self._decode = decoder(entry)
        self._bodies: asyncio.Queue[bytes] = asyncio.Queue()

    async def put(self, msg: Any) -> None:
        self._bodies.put_nowait(msg.data)

    def empty(self) -> bool:
        return self._bodies.empty()

    def next_nowait(self) -> Any:
        """The next message, decoded; asyncio.QueueEmpty when none has arrived."""
        return self._decode(self._bodies.get_nowait())

    async def next(self) -> Any:
        """The next message, decoded, once it arrives (bound the wait with asyncio.timeout)."""
        return self._decode(await self._bodies.get())

    async def close(self) -> None:
        listening, self.listening = self.listening, None
        if listening is not None:
            await listening.unsubscribe()
