"""A consume loop keeps draining after the server ends its pull requests with a status: a 409
(the consumer deleted, its leader changed), a 503 (no consumer to answer). Real nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from lobe.shared.bus.consume import Batches, Consumer
from lobe.shared.events.streams import StreamSpec

SPEC = StreamSpec(name="RECOVERTEST", subjects=("recovertest.x",), max_age_s=3600)
DURABLE = "recoverer"
CONFIG = ConsumerConfig(durable_name=DURABLE, ack_policy=AckPolicy.EXPLICIT, ack_wait=30)
BOUND_S = 10.0  # generous: a healthy loop takes well under a second


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NATS]:
    conn = await nats.connect(nats_url)
    await conn.jetstream().add_stream(StreamConfig(name=SPEC.name, subjects=list(SPEC.subjects)))
    yield conn
    await conn.close()


class Received:
    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.changed = asyncio.Event()

    async def handle(self, msgs: Sequence[Msg]) -> float:
        for msg in msgs:
            self.data.append(msg.data)
            await msg.ack()
        self.changed.set()
        return 0.0

    async def until(self, data: bytes) -> None:
        async with asyncio.timeout(BOUND_S):
            while data not in self.data:
                self.changed.clear()
                await self.changed.wait()


async def started(nc: NATS, received: Received) -> Consumer:
    batches = Batches(batch=10, handler=received.handle, wait_s=1.0, loops=1)
    consumer = Consumer(nc, nc.jetstream(), SPEC, DURABLE, batches)
    await consumer.start(CONFIG)
    return consumer


async def published_then_consumed(js: JetStreamContext, consumer: Consumer, received: Received) -> None:
    """Publish b"after"; it reaches the handler within the bound (else TimeoutError)."""
    try:
        await js.publish(SPEC.subjects[0], b"after")
        await received.until(b"after")
    finally:
        await consumer.stop()


async def test_a_consumer_deleted_under_a_waiting_pull_is_recreated_and_drained(nc: NATS) -> None:
    received = Received()
    consumer = await started(nc, received)
    js = nc.jetstream()
    await js.publish(SPEC.subjects[0], b"before")
    await received.until(b"before")
    await asyncio.sleep(0.2)  # the loop's next pull now lingers on the empty consumer
    # The server ends that pull with "409 Consumer Deleted"; nobody but the loop recreates it.
    await js.delete_consumer(SPEC.name, DURABLE)
    await published_then_consumed(js, consumer, received)
    assert received.data.count(b"after") == 1


async def test_a_pull_ended_by_a_409_is_followed_by_another(nc: NATS) -> None:
    """The consumer is recreated at once by someone else (as after a leader change the consumer is
    there again): the loop's next pull reaches it."""
    received = Received()
    consumer = await started(nc, received)
    js = nc.jetstream()
    await asyncio.sleep(0.2)
    await js.delete_consumer(SPEC.name, DURABLE)
    await js.add_consumer(SPEC.name, CONFIG)
    await published_then_consumed(js, consumer, received)
