"""BatchPuller against a real JetStream consumer: batches, waiting, leftovers, status look-alikes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from lobe.shared.bus.pull import BatchPuller, ConsumerGone

STREAM, SUBJECT, CONSUMER = "PULLTEST", "pulltest.x", "puller"


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NATS]:
    conn = await nats.connect(nats_url)
    js = conn.jetstream()
    await js.add_stream(StreamConfig(name=STREAM, subjects=[SUBJECT]))
    await js.add_consumer(
        STREAM, ConsumerConfig(durable_name=CONSUMER, ack_policy=AckPolicy.EXPLICIT, ack_wait=30)
    )
    yield conn
    await conn.close()


async def publish(nc: NATS, n: int, start: int = 0) -> None:
    js = nc.jetstream()
    for i in range(start, start + n):
        await js.publish(SUBJECT, str(i).encode())


async def puller(nc: NATS) -> BatchPuller:
    p = BatchPuller(nc, STREAM, CONSUMER)
    await p.start()
    return p


async def test_a_fetch_returns_at_most_a_batch_of_what_is_on_hand_in_stream_order(nc: NATS) -> None:
    await publish(nc, 7)
    p = await puller(nc)
    first = await p.fetch(5, wait_s=2)
    rest = await p.fetch(5, wait_s=2)
    assert [m.data for m in first] == [b"0", b"1", b"2", b"3", b"4"]
    assert [m.data for m in rest] == [b"5", b"6"]
    await p.close()


async def test_a_partial_batch_comes_back_at_once_not_after_the_timeout(nc: NATS) -> None:
    await publish(nc, 3)
    p = await puller(nc)
    started = time.monotonic()
    msgs = await p.fetch(500, wait_s=5)
    assert len(msgs) == 3
    assert time.monotonic() - started < 2
    await p.close()


async def test_an_empty_consumer_gives_an_empty_batch_after_the_timeout(nc: NATS) -> None:
    p = await puller(nc)
    started = time.monotonic()
    assert await p.fetch(10, wait_s=0.5) == []
    assert 0.4 < time.monotonic() - started < 2
    await p.close()


async def test_a_message_published_while_a_fetch_waits_is_returned(nc: NATS) -> None:
    p = await puller(nc)
    fetch = asyncio.create_task(p.fetch(1, wait_s=5))
    await asyncio.sleep(0.3)
    await publish(nc, 1)
    started = time.monotonic()
    [msg] = await fetch
    assert msg.data == b"0"
    assert time.monotonic() - started < 2
    await p.close()


async def test_a_stored_message_with_a_status_header_is_delivered_not_taken_for_the_server(nc: NATS) -> None:
    await nc.jetstream().publish(SUBJECT, b"looks like a 404", headers={"Status": "404"})
    p = await puller(nc)
    [msg] = await p.fetch(10, wait_s=2)
    assert msg.data == b"looks like a 404"
    await p.close()


async def test_each_message_is_fetched_once_and_acks_leave_nothing_pending(nc: NATS) -> None:
    await publish(nc, 120)
    p = await puller(nc)
    seen: list[bytes] = []
    while len(seen) < 120:
        batch = await p.fetch(50, wait_s=2)
        assert batch, "the consumer still holds messages"
        for msg in batch:
            seen.append(msg.data)
            await msg.ack()
    await p.close()
    assert sorted(seen, key=int) == [str(i).encode() for i in range(120)]
    await nc.flush()
    info = await nc.jetstream().consumer_info(STREAM, CONSUMER)
    assert info.num_ack_pending == 0
    assert info.num_pending == 0


async def test_a_prefetched_batch_is_handed_back_on_close_and_redelivered_at_once(nc: NATS) -> None:
    await publish(nc, 4)
    p = await puller(nc)
    assert [m.data for m in await p.fetch(2, wait_s=2)] == [b"0", b"1"]  # and 2, 3 prefetched
    await p.close()
    again = await puller(nc)
    started = time.monotonic()
    msgs = await again.fetch(2, wait_s=5)
    assert sorted(m.data for m in msgs) == [b"2", b"3"]
    assert time.monotonic() - started < 2  # nak'ed, not left to ack_wait (30 s)
    await again.close()


async def test_a_fetch_from_a_deleted_consumer_says_so_instead_of_returning_nothing_forever(nc: NATS) -> None:
    # No pull lingers when it is deleted, so no 409 comes: the next pull finds no responder.
    p = await puller(nc)
    await nc.jetstream().delete_consumer(STREAM, CONSUMER)
    with pytest.raises(ConsumerGone, match="no responder"):
        await p.fetch(5, wait_s=0.5)
    await p.close()
