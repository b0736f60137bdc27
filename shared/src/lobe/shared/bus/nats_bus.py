"""The bus over nats.py: every subscription and request a service makes goes through here.

The fast idiom, measured (docs/architecture.md, "The bus: one idiom"): nats.py callback
subscriptions, one model decode per message straight from the bytes, replies written from the
callback. No per-message task, uuid or timer, except where the handler waits on a database and
`concurrency` asks for tasks (nats.py runs one subscription's callbacks one after another).
"""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig
from pydantic import BaseModel

from lobe.shared.bus.calls import BusCalls, EntryRef, MessageTooLarge, NoResponders, Responder, entry_of
from lobe.shared.bus.connection import close, connect, flush
from lobe.shared.bus.consume import Batches, Consumer
from lobe.shared.bus.facts import publish_fact
from lobe.shared.bus.replies import Listening, OnMessage
from lobe.shared.bus.responder import Process
from lobe.shared.events.streams import StreamSpec
from lobe.shared.settings import NatsSettings


class Bus(BusCalls):
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

    async def _answer(self, subject: str, queue: str, process: Process, responder: Responder) -> Responder:
        nc = self.connection

        async def answer(msg: Msg) -> None:
            reply = await process(msg.subject, msg.data, msg.headers)
            if reply is not None and msg.reply:
                await nc.publish(msg.reply, reply)

        on_msg = answer
        slots, in_hand = responder.slots, responder.in_hand
        if slots is not None:

            async def settle(msg: Msg) -> None:
                try:
                    await answer(msg)
                finally:
                    slots.release()

            async def in_a_task(msg: Msg) -> None:
                await slots.acquire()
                task = asyncio.create_task(settle(msg))
                in_hand.add(task)
                task.add_done_callback(in_hand.discard)

            on_msg = in_a_task
        responder.subscription = await nc.subscribe(subject, queue=queue, cb=on_msg)
        self._responders.append(responder)
        await flush(nc)  # live before this returns: an asker's first request must find a responder
        return responder

    async def _exchange(self, subject: str, data: bytes, timeout_s: float, headers: dict[str, str]) -> bytes:
        nc = self.connection
        if len(data) > nc.max_payload:  # checked before nats.py registers a reply it would never get
            raise MessageTooLarge(len(data), nc.max_payload)
        try:
            msg = await nc.request(subject, data, timeout=timeout_s, headers=headers)
        except NoRespondersError:
            raise NoResponders(subject) from None
        except NatsTimeoutError:
            raise TimeoutError(subject) from None
        return msg.data

    async def _publish(self, subject: str, data: bytes, headers: dict[str, str]) -> None:
        await self.connection.publish(subject, data, headers=headers)

    async def _listen(self, subject: str, on_message: OnMessage, *, live: bool) -> Listening:
        subscription: Listening = await self.connection.subscribe(subject, cb=on_message)
        if live:
            await flush(self.connection)
        # Else no round trip: what this connection sends next (the request naming a reply
        # subject) reaches the server behind the SUB, and the server keeps a connection's order.
        return subscription

    async def publish_fact(self, ref: EntryRef, event: BaseModel, attempts: int = 1) -> bool:
        return await publish_fact(self.js, entry_of(ref).subject, event, attempts)

    async def _consume(self, stream: StreamSpec, config: ConsumerConfig, batches: Batches) -> Consumer:
        assert config.durable_name is not None
        consumer = Consumer(self.connection, self.js, stream, config.durable_name, batches)
        await consumer.start(config)
        self._consumers.append(consumer)
        return consumer
