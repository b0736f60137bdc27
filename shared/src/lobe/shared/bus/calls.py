"""The bus's calls as a service sees them, the same on NATS (lobe.shared.bus.nats_bus) and in
memory (lobe.shared.bus.memory): what each does with the catalog is here, once; the transports
only move bytes."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from nats.aio.subscription import Subscription
from nats.js.api import ConsumerConfig
from pydantic import BaseModel, ValidationError

from lobe.shared.bus.consume import Batches, BatchHandler, Consuming, consumer_config
from lobe.shared.bus.replies import Listening, OnMessage, Replies
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
from lobe.shared.bus.tracing import asking, publishing, traced_batches, unanswered
from lobe.shared.catalog import Delivery, Subject, lookup
from lobe.shared.catalog.api import BY_SUBJECT
from lobe.shared.events.streams import StreamSpec
from lobe.shared.telemetry import inject_headers

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


class NoResponders(Exception):
    """Nobody subscribes to the subject asked: at once, where a timeout takes its whole wait."""


class MessageTooLarge(ValueError):
    """A message past what the server takes in one (NATS max_payload); nothing was sent."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{size} bytes > {limit}")
        self.size = size
        self.limit = limit


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
            try:
                reply = await self._exchange(subject, encode(payload), timeout_s, headers)
            except (NoResponders, TimeoutError):
                unanswered(span)
                return None
            decoded = decode_reply(entry, reply)
            if decoded is None:
                unanswered(span)
            return decoded

    async def exchange(
        self, ref: EntryRef, payload: BaseModel | None, timeout_s: float, **tokens: str
    ) -> bytes:
        """The request-reply exchange under `request`, for an asker that reads the reply itself and
        tells no responder from a slow one: the gateway's chat hand-over (a worker answers an
        AcceptedFrame or a refusal frame; no worker at all is a 503 at once). The reply's bytes;
        raises NoResponders, TimeoutError (none answered within `timeout_s`) or MessageTooLarge."""
        # The caller's trace context rides along, but no span of the bus's own: on the chat
        # hand-over (every request) a CLIENT span cost 50-65 us of CPU per answer with tracing on,
        # +40 % on the gateway's dispatch path (tests/bench/dispatch_frames.py --tracing), and the
        # worker's `process chat.request` span already shows the accept in the request's trace.
        subject = concrete(entry_of(ref), tokens)
        return await self._exchange(subject, encode(payload), timeout_s, inject_headers())

    async def publish(self, ref: EntryRef, message: BaseModel | None, **tokens: str) -> None:
        """A core message on a catalogued subject, at most once, no answer: a core command
        (`chat.cancel.<worker_id>`) or a core fact (`cache.response.invalidated`). A JetStream
        fact goes through `publish_fact` (its stream's ack and duplicate window)."""
        entry = entry_of(ref)
        if entry.delivery is Delivery.JETSTREAM:
            raise ValueError(f"{entry.subject} is a JetStream fact: publish_fact")
        subject = concrete(entry, tokens)
        with publishing(entry, {}) as (_, headers):
            await self._publish(subject, encode(message), headers)

    async def subscribe(self, ref: EntryRef, handler: Handler, **tokens: str) -> Listening:
        """Hear every message on a subject that every replica of this service hears on its own (the
        catalog names it a consumer without a queue group: `auth.key.revoked`, a cache
        invalidation): each decoded into the catalog's payload model and handed to `handler`
        (sync or async), nothing answered; the responder's rules for a body that does not decode
        or a handler that raises (logged, and the next message is handled). Live at the server
        when it returns."""
        entry = entry_of(ref)
        if queue_of(entry, self.service) is not None:
            raise ValueError(f"{self.service} shares {entry.subject} in a queue group: responds")
        process = processor(entry, handler, Rules(), with_headers=False)

        async def hear(msg: Any) -> None:
            await process(msg.subject, msg.data, msg.headers)

        return await self._listen(concrete(entry, tokens), hear, live=True)

    async def replies(self, ref: EntryRef, **tokens: str) -> Replies:
        """A subscription to one concrete reply subject (`chat.reply.<request_id>.<offer>`), whose
        messages the asker reads in order (`Replies`). Live at the server for whatever this
        connection sends after it (NATS keeps one connection's order): the request naming it as
        `reply_to` goes out behind it, with no round trip to wait for."""
        entry = entry_of(ref)
        queue_of(entry, self.service)  # refuses a service the catalog does not name a consumer
        stream = Replies(entry, concrete(entry, tokens))
        stream.listening = await self._listen(stream.subject, stream.put, live=False)
        return stream

    @abstractmethod
    async def _answer(
        self, subject: str, queue: str, process: Process, responder: Responder
    ) -> Responder: ...

    @abstractmethod
    async def _exchange(self, subject: str, data: bytes, timeout_s: float, headers: dict[str, str]) -> bytes:
        """The reply's bytes; raises NoResponders, TimeoutError or MessageTooLarge. `headers`
        carry the request's trace context."""

    @abstractmethod
    async def _publish(self, subject: str, data: bytes, headers: dict[str, str]) -> None: ...

    @abstractmethod
    async def _listen(self, subject: str, on_message: OnMessage, *, live: bool) -> Listening:
        """Every message on `subject` to `on_message`, in order, without a queue group; `live`:
        at the server when this returns (another connection's next message is heard)."""

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
