"""The bus in memory, for unit tests: the same calls as lobe.shared.bus.Bus, the same decode,
encode and unanswered rules (lobe.shared.bus.responder), no server. Commands reach the responder
of their subject (one per subject: a queue group of one); facts are kept per subject and handed
to the consumers whose catalog filter takes them; a nak'ed message comes back in a later batch.
A core message (and a JetStream fact, as on NATS) also reaches every subscriber of its subject.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from nats.js.api import ConsumerConfig
from pydantic import BaseModel

from lobe.shared.bus.calls import BusCalls, EntryRef, NoResponders, Responder, entry_of
from lobe.shared.bus.consume import Batches, BatchHandler
from lobe.shared.bus.replies import Listening, OnMessage
from lobe.shared.bus.responder import Process
from lobe.shared.bus.tracing import publishing
from lobe.shared.events.streams import StreamSpec


@dataclass
class MemoryMsg:
    """A fetched message as a batch handler sees it (nats.py's Msg: subject, data, headers, ack, nak)."""

    subject: str
    data: bytes
    headers: dict[str, str] | None = None
    acked: bool = False
    naks: int = 0
    _back: asyncio.Queue[MemoryMsg] | None = field(default=None, repr=False)

    async def ack(self) -> None:
        self.acked = True

    async def nak(self, delay: float | None = None) -> None:
        self.naks += 1
        if self._back is not None:
            self._back.put_nowait(self)


@dataclass
class _Listener:
    """A subscription without a queue group, in memory: `unsubscribe` takes it off its subject."""

    on_subject: list[OnMessage]
    on_message: OnMessage

    def __post_init__(self) -> None:
        self.on_subject.append(self.on_message)

    async def unsubscribe(self, limit: int = 0) -> None:
        if self.on_message in self.on_subject:
            self.on_subject.remove(self.on_message)


class MemoryBus(BusCalls):
    def __init__(self, service: str) -> None:
        self.service = service
        self.facts: dict[str, list[BaseModel]] = defaultdict(list)
        self._responders: dict[str, Process] = {}
        self._listeners: dict[str, list[OnMessage]] = defaultdict(list)
        self._queues: list[tuple[list[str], asyncio.Queue[MemoryMsg]]] = []
        self._loops: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()

    @property
    def connected(self) -> bool:
        return not self._stop.is_set()

    async def _answer(self, subject: str, queue: str, process: Process, responder: Responder) -> Responder:
        self._responders[subject] = process
        return responder

    async def ask(self, subject: str, data: bytes, headers: Mapping[str, str] | None = None) -> bytes | None:
        """The raw exchange, as a test sends malformed bytes: the reply's bytes, or None (unanswered)."""
        process = self._responders.get(subject)
        return None if process is None else await process(subject, data, headers)

    async def _exchange(self, subject: str, data: bytes, timeout_s: float, headers: dict[str, str]) -> bytes:
        if subject not in self._responders:
            raise NoResponders(subject)
        reply = await self.ask(subject, data, headers)
        if reply is None:
            raise TimeoutError(subject)  # unanswered: the asker waits out its timeout
        return reply

    async def _publish(self, subject: str, data: bytes, headers: dict[str, str]) -> None:
        if subject in self._responders:
            await self.ask(subject, data, headers)
        await self._hear(subject, data, headers)

    async def _listen(self, subject: str, on_message: OnMessage, *, live: bool) -> Listening:
        return _Listener(self._listeners[subject], on_message)

    async def _hear(self, subject: str, data: bytes, headers: dict[str, str] | None) -> None:
        for on_message in list(self._listeners.get(subject, ())):
            await on_message(MemoryMsg(subject, data, headers))

    async def publish_fact(self, ref: EntryRef, event: BaseModel, attempts: int = 1) -> bool:
        entry = entry_of(ref)
        self.facts[entry.subject].append(event)
        data = event.model_dump_json().encode()
        with publishing(entry, {}) as (_, headers):
            await self._hear(entry.subject, data, headers)  # a core subscriber hears a JetStream fact too
            self.deliver(entry.subject, data, headers)
        return True

    def deliver(self, subject: str, data: bytes, headers: dict[str, str] | None = None) -> None:
        """Bytes on a stream's subject as any producer may send them (a test's malformed ones)."""
        for subjects, queue in self._queues:
            if subject in subjects:
                queue.put_nowait(MemoryMsg(subject, data, headers, _back=queue))

    async def settled(self) -> None:
        """Once every message delivered so far has been handled (and each nak'ed one again)."""
        for _, queue in self._queues:
            await queue.join()

    async def _consume(self, stream: StreamSpec, config: ConsumerConfig, batches: Batches) -> MemoryBus:
        queue: asyncio.Queue[MemoryMsg] = asyncio.Queue()
        self._queues.append((list(config.filter_subjects or ()), queue))
        for _ in range(batches.loops):
            self._loops.append(asyncio.create_task(self._run(queue, batches.batch, batches.handler)))
        return self  # stopping one consumer in memory stops them all

    async def stop(self) -> None:
        await self.stop_handlers()

    async def _run(self, queue: asyncio.Queue[MemoryMsg], batch: int, handler: BatchHandler) -> None:
        while not self._stop.is_set():
            msgs = [await queue.get()]
            while len(msgs) < batch and not queue.empty():
                msgs.append(queue.get_nowait())
            try:
                await handler(msgs)  # type: ignore[arg-type]  # MemoryMsg stands in for nats.py's Msg
            finally:
                for _ in msgs:
                    queue.task_done()

    async def stop_handlers(self) -> None:
        self._stop.set()
        for task in self._loops:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops.clear()
