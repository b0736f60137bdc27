"""The bus in memory, for unit tests: the same calls as lobe.shared.bus.Bus, the same decode,
encode and unanswered rules (lobe.shared.bus.responder), no server. Commands reach the responder
of their subject (one per subject: a queue group of one); facts are kept per subject and handed
to the consumers whose catalog filter takes them; a nak'ed message comes back in a later batch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel

from lobe.shared.bus.consume import BatchHandler, routed_subjects
from lobe.shared.bus.nats_bus import EntryRef, concrete, decode_reply, entry_of, queue_of
from lobe.shared.bus.responder import (
    Handler,
    Malformed,
    OnUnanswered,
    Process,
    Rules,
    encode,
    log_unanswered,
    processor,
)
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


class MemoryBus:
    def __init__(self, service: str) -> None:
        self.service = service
        self.facts: dict[str, list[BaseModel]] = defaultdict(list)
        self._responders: dict[str, Process] = {}
        self._queues: list[tuple[list[str], asyncio.Queue[MemoryMsg]]] = []
        self._loops: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()

    @property
    def connected(self) -> bool:
        return not self._stop.is_set()

    async def responds(
        self,
        ref: EntryRef,
        handler: Handler,
        *,
        concurrency: int = 0,
        with_headers: bool = False,
        quiet: tuple[type[Exception], ...] = (),
        on_unanswered: OnUnanswered = log_unanswered,
        malformed: Malformed | None = None,
        **tokens: str,
    ) -> None:
        entry = entry_of(ref)
        queue_of(entry, self.service)  # the same check as on NATS: the catalog names this consumer
        subject = concrete(entry, tokens)
        self._responders[subject] = processor(
            entry, handler, Rules(quiet, on_unanswered, malformed), with_headers
        )

    async def ask(self, subject: str, data: bytes, headers: Mapping[str, str] | None = None) -> bytes | None:
        """The raw exchange, as a test sends malformed bytes: the reply's bytes, or None (unanswered)."""
        process = self._responders.get(subject)
        return None if process is None else await process(subject, data, headers)

    async def request(
        self, ref: EntryRef, payload: BaseModel | None, timeout_s: float, **tokens: str
    ) -> BaseModel | None:
        entry = entry_of(ref)
        subject = concrete(entry, tokens)
        reply = await self.ask(subject, encode(payload))
        return None if reply is None else decode_reply(entry, reply)

    async def publish_fact(self, ref: EntryRef, event: BaseModel, attempts: int = 1) -> bool:
        subject = entry_of(ref).subject
        self.facts[subject].append(event)
        self.deliver(subject, event.model_dump_json().encode())
        return True

    def deliver(self, subject: str, data: bytes) -> None:
        """Bytes on a stream's subject as any producer may send them (a test's malformed ones)."""
        for subjects, queue in self._queues:
            if subject in subjects:
                queue.put_nowait(MemoryMsg(subject, data, _back=queue))

    async def settled(self) -> None:
        """Once every message delivered so far has been handled (and each nak'ed one again)."""
        for _, queue in self._queues:
            await queue.join()

    async def consume(
        self,
        stream: StreamSpec,
        durable: str,
        batch: int,
        handler: BatchHandler,
        *,
        wait_s: float,
        loops: int = 1,
        **config: object,
    ) -> None:
        queue: asyncio.Queue[MemoryMsg] = asyncio.Queue()
        self._queues.append((routed_subjects(stream, durable, self.service), queue))
        for _ in range(loops):
            self._loops.append(asyncio.create_task(self._run(queue, batch, handler)))

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
