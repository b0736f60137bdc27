"""The bus over nats.py: every subscription and request a service makes goes through here.

The fast idiom, measured (docs/architecture.md, "The bus: one idiom"): nats.py callback
subscriptions, one model decode per message straight from the bytes, replies written from the
callback. No per-message task, uuid or timer, except where the handler waits on a database and
`concurrency` asks for tasks (nats.py runs one subscription's callbacks one after another).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from pydantic import BaseModel, ValidationError

from lobe.shared.bus.connection import close, connect, flush
from lobe.shared.bus.consume import BatchHandler, Consumer, consumer_config
from lobe.shared.bus.facts import publish_fact
from lobe.shared.bus.responder import (
    Handler,
    Malformed,
    OnUnanswered,
    Rules,
    encode,
    log_unanswered,
    processor,
)
from lobe.shared.catalog import Subject, lookup
from lobe.shared.catalog.api import BY_SUBJECT
from lobe.shared.events.streams import StreamSpec
from lobe.shared.settings import NatsSettings

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


class Responder:
    """One subscription answering one catalogued subject; `stop` takes no more and finishes those in hand."""

    def __init__(self, concurrency: int) -> None:
        self.subscription: Subscription | None = None
        self._slots = asyncio.Semaphore(concurrency) if concurrency else None
        self._in_hand: set[asyncio.Task[None]] = set()

    async def stop(self) -> None:
        subscription, self.subscription = self.subscription, None
        if subscription is not None:
            try:
                await subscription.drain()  # type: ignore[no-untyped-call]
            except Exception as exc:  # a connection already closing drains it itself
                log.debug("drain of %s failed: %r", subscription.subject, exc)
        if self._in_hand:
            await asyncio.gather(*self._in_hand)


class Bus:
    """One service's connection to the bus. The runtime (lobe.shared.process) connects and drains
    it; `over` wraps a connection made elsewhere (tests, benches)."""

    def __init__(self, settings: NatsSettings | None, name: str, service: str) -> None:
        self.settings = settings
        self.name = name
        self.service = service
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._responders: list[Responder] = []
        self._consumers: list[Consumer] = []

    @classmethod
    def over(cls, nc: NATS, service: str) -> Bus:
        bus = cls(None, service, service)
        bus._nc = nc
        return bus

    async def connect(self) -> NATS:
        assert self.settings is not None, "a bus made `over` a connection is already connected"
        self._nc = await connect(self.settings, self.name)
        return self._nc

    async def stop(self) -> None:
        """Stop every consumer and responder (those in hand finish), then drain the connection."""
        await self.stop_handlers()
        if self._nc is not None and self.settings is not None:
            await close(self._nc)

    async def stop_handlers(self) -> None:
        for consumer in self._consumers:
            await consumer.stop()
        for responder in self._responders:
            await responder.stop()

    @property
    def connection(self) -> NATS:
        assert self._nc is not None, "connect() first"
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            self._js = self.connection.jetstream()
        return self._js

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

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
        subject = concrete(entry, tokens)
        process = processor(entry, handler, Rules(quiet, on_unanswered, malformed), with_headers)
        responder = Responder(concurrency)
        nc = self.connection

        async def answer(msg: Msg) -> None:
            reply = await process(msg.subject, msg.data, msg.headers)
            if reply is not None and msg.reply:
                await nc.publish(msg.reply, reply)

        if concurrency:
            slots, in_hand = responder._slots, responder._in_hand
            assert slots is not None

            async def settle(msg: Msg) -> None:
                try:
                    await answer(msg)
                finally:
                    slots.release()

            async def on_msg(msg: Msg) -> None:
                await slots.acquire()
                task = asyncio.create_task(settle(msg))
                in_hand.add(task)
                task.add_done_callback(in_hand.discard)

        else:
            on_msg = answer
        responder.subscription = await nc.subscribe(subject, queue=queue, cb=on_msg)
        self._responders.append(responder)
        await flush(nc)  # live before this returns: an asker's first request must find a responder
        return responder

    async def request(
        self, ref: EntryRef, payload: BaseModel | None, timeout_s: float, **tokens: str
    ) -> BaseModel | None:
        """Ask and decode the catalogued reply. None when no responder exists, none answered in
        time, or the reply does not decode (logged): silence is an answer, the caller decides what
        it means (fail open, fail closed, 503)."""
        entry = entry_of(ref)
        subject = concrete(entry, tokens)
        try:
            msg = await self.connection.request(subject, encode(payload), timeout=timeout_s)
        except (NoRespondersError, NatsTimeoutError):
            return None
        return decode_reply(entry, msg.data)

    async def publish_fact(self, ref: EntryRef, event: BaseModel, attempts: int = 1) -> bool:
        """`event` on its JetStream subject, deduplicated by the catalog's Nats-Msg-Id (lobe.shared.bus.facts)."""
        return await publish_fact(self.js, entry_of(ref).subject, event, attempts)

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
    ) -> Consumer:
        """Pull batches of up to `batch` from the durable consumer `durable` on `stream` (its filter:
        the subjects the catalog routes to it), `loops` fetch loops at once, each handing its batch
        to `handler`, which acks or naks each message and returns how long to pause."""
        consumer = Consumer(self.connection, self.js, stream, durable, batch, handler, wait_s)
        await consumer.start(consumer_config(stream, durable, self.service, **config), loops)
        self._consumers.append(consumer)
        return consumer


def decode_reply(entry: Subject, data: bytes) -> BaseModel | None:
    try:
        reply: BaseModel = entry.reply.model_validate_json(data)
    except ValidationError as exc:
        log.warning("unreadable %s reply: %s", entry.subject, exc.errors(include_url=False)[:3])
        return None
    return reply
