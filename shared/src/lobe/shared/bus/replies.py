"""A reply stream: the messages of one concrete reply subject, read in arrival order by the one
asker that subscribed (the gateway reading a worker's answer frames on `chat.reply.<id>.<offer>`).

The subscription's callback only queues the body; the reader decodes it into the catalog's
payload model when it takes it, so a frame costs one queue put, one get and one decode, as the
raw callback did (tests/bench/dispatch_frames.py). A body that does not decode raises
ValidationError to the reader: in a stream, a garbled message is the reader's to fail on, not
something to skip.
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
    """`empty`, `get_nowait` (asyncio.QueueEmpty when nothing arrived) and `get` (bound the wait
    with asyncio.timeout) take the bodies in arrival order; `decode` turns one into the catalog's
    payload model, or raises ValidationError. The queue's own methods, not wrappers around them:
    a wrapper is a Python call more per frame (tests/bench/dispatch_frames.py measured 4 µs per
    answer of 22 frames for two of them)."""

    def __init__(self, entry: Subject, subject: str) -> None:
        bodies: asyncio.Queue[bytes] = asyncio.Queue()
        self.subject = subject
        self.listening: Listening | None = None
        self.decode: Callable[[bytes], Any] = decoder(entry)
        self.empty = bodies.empty
        self.get_nowait = bodies.get_nowait
        self.get = bodies.get
        self._put = bodies.put_nowait

    async def put(self, msg: Any) -> None:
        self._put(msg.data)

    async def close(self) -> None:
        listening, self.listening = self.listening, None
        if listening is not None:
            await listening.unsubscribe()
