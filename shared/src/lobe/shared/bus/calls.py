"""The bus's calls as a service sees them, the same on NATS (lobe.shared.bus.nats_bus) and in
memory (lobe.shared.bus.memory): what each does with the catalog is here, once; the transports
only move bytes."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping

from nats.aio.subscription import Subscription
from nats.js.api import ConsumerConfig
from pydantic import BaseModel, ValidationError

from lobe.shared.bus.consume import Batches, BatchHandler, Consuming, consumer_config
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
from lobe.shared.bus.tracing import asking, traced_batches, unanswered
from lobe.shared.catalog import Subject, lookup
from lobe.shared.catalog.api import BY_SUBJECT
from lobe.shared.events.streams import StreamSpec

log = logging.getLogger(__name__)
EntryRef = Subject | str


def entry_of(ref: EntryRef) -> Subject:
    """A catalog entry, given or named by its subject pattern (or a concrete subject)."""
    if isinstance(ref, Subject):
        return ref
    return BY_SUBJECT.get(ref) or lookup(ref)


def concrete(entry: Subject, tokens: Mapping[str, str]) -> str:
    return entry.format(tokens) if entry.is_pattern else entry.subject


def queue_of(entry: Subject, service: str) -> str | None:
    """The service's queue group on `entry`, as the catalog says; ValueError if it is not a consumer."""
    for consumer in entry.consumers:
        if consumer.service == service:
            return consumer.group
    raise ValueError(f"{service} is not a consumer of {entry.subject} in the event catalog")


def decode_reply(entry: Subject, data: bytes) -> BaseModel | None:
    try:
        reply: BaseModel = entry.reply.model_validate_json(data)
    except ValidationError as exc:
        log.warning("unreadable %s reply: %s", entry.subject, exc.errors(include_url=False)[:3])
        return None
    return reply


class Responder:
    """One subscription answering one catalogued subject; `stop` takes no more and finishes those in hand."""

    def __init__(self, concurrency: int) -> None:
        self.subscription: Subscription | None = None
        self.slots = asyncio.Semaphore(concurrency) if concurrency else None
        self.in_hand: set[asyncio.Task[None]] = set()

    async def stop(self) -> None:
        subscription, self.subscription = self.subscription, None
        if subscription is not None:
            try:
                await subscription.drain()  # type: ignore[no-untyped-call]
            except Exception as exc:  # a connection already closing drains it itself
                log.debug("drain of %s failed: %r", subscription.subject, exc)
        if self.in_hand:
            await asyncio.gather(*self.in_hand)


class BusCalls(ABC):
    service: str

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
    ) -> Responder:
        """Answer `ref`'s commands with `handler` (request model in, reply model out), in the queue
        group the catalog gives this service; live at the server when this returns. `tokens` fill
        a patterned subject (`worker_id=`). `concurrency` > 0 runs up to that many handlers at once,
        each in a task: for handlers that wait on a database."""
        entry = entry_of(ref)
        queue = queue_of(entry, self.service) or ""
        process = processor(entry, handler, Rules(quiet, on_unanswered, malformed), with_headers)
        return await self._answer(concrete(entry, tokens), queue, process, Responder(concurrency))

    async def request(
        self, ref: EntryRef, payload: BaseModel | None, timeout_s: float, **tokens: str
    ) -> BaseModel | None:
        """Ask and decode the catalogued reply. None when no responder exists, none answered in
        time, or the reply does not decode (logged): silence is an answer, the caller decides what
        it means (fail open, fail closed, 503)."""
        entry = entry_of(ref)
        subject = concrete(entry, tokens)
        with asking(entry, subject) as (span, headers):
            reply = await self._ask(subject, encode(payload), timeout_s, headers)
            decoded = None if reply is None else decode_reply(entry, reply)
            if decoded is None:
                unanswered(span)
            return decoded

    @abstractmethod
    async def _answer(
        self, subject: str, queue: str, process: Process, responder: Responder
    ) -> Responder: ...

    @abstractmethod
    async def _ask(
        self, subject: str, data: bytes, timeout_s: float, headers: dict[str, str]
    ) -> bytes | None:
        """The reply's bytes, or None; `headers` carry the request's trace context."""

    @abstractmethod
    async def publish_fact(self, ref: EntryRef, event: BaseModel, attempts: int = 1) -> bool:
        """`event` on its JetStream subject, deduplicated by the catalog's Nats-Msg-Id."""

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
    ) -> Consuming:
        """Pull batches of up to `batch` from the durable consumer `durable` on `stream` (its filter:
        the subjects the catalog routes to it), `loops` fetch loops at once, each handing its batch
        to `handler`, which acks or naks each message and returns how long to pause."""
        settings = consumer_config(stream, durable, self.service, **config)
        traced = traced_batches(stream, durable, handler)
        return await self._consume(stream, settings, Batches(batch, traced, wait_s, loops))

    @abstractmethod
    async def _consume(self, stream: StreamSpec, config: ConsumerConfig, batches: Batches) -> Consuming: ...

    @abstractmethod
    async def stop_handlers(self) -> None:
        """Stop every consumer and responder; those in hand finish."""
