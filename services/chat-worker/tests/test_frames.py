"""The FrameSink on a real NATS connection: deltas ready together go out as one `deltas` frame, a
delta ready alone goes out at once as a `delta` frame, and every delta keeps its own number."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from lobe.chat_worker.frames import MAX_COALESCED, FrameSink
from lobe.devtools.waiting import eventually
from lobe.shared.events.chat import (
    DeltaFrame,
    DeltasFrame,
    DoneFrame,
    ReplyFrame,
    TokenUsage,
    UsageFrame,
    decode_frame,
)
from lobe.shared.events.chat_wire import WireDelta

SUBJECT = "chat.reply.r1.1"


async def listen(nc: NATS) -> list[ReplyFrame]:
    received: list[ReplyFrame] = []

    async def on_frame(msg: Msg) -> None:
        received.append(decode_frame(msg.data))

    await nc.subscribe(SUBJECT, cb=on_frame)
    await nc.flush()
    return received


def delta(sink: FrameSink, text: str) -> WireDelta:
    return WireDelta(request_id="r1", seq=sink.next_seq(), content=text)


async def finish(sink: FrameSink) -> None:
    usage = TokenUsage(prompt_tokens=1, completion_tokens=2)
    await sink.send(UsageFrame(request_id="r1", seq=sink.next_seq(), usage=usage))
    await sink.send(
        DoneFrame(request_id="r1", seq=sink.next_seq(), finish_reason="stop", model="m", provider="p")
    )


async def test_deltas_sent_within_one_turn_of_the_loop_go_out_as_one_deltas_frame(nc: NATS) -> None:
    received = await listen(nc)
    async with FrameSink(nc, SUBJECT, "r1", heartbeat_s=60) as sink:
        for word in ("one ", "two ", "three"):
            await sink.send(delta(sink, word))  # no suspension in between: one message
        await finish(sink)
    await eventually(lambda: len(received) == 3)
    deltas, usage, done = received
    assert isinstance(deltas, DeltasFrame)
    assert deltas.seq == 1
    assert deltas.deltas == [
        DeltaFrame(request_id="r1", seq=1, content="one "),
        DeltaFrame(request_id="r1", seq=2, content="two "),
        DeltaFrame(request_id="r1", seq=3, content="three"),
    ]
    assert (usage.seq, done.seq) == (4, 5)
    assert sink.published == 3


async def test_a_delta_sent_alone_is_published_without_waiting_for_another(nc: NATS) -> None:
    received = await listen(nc)
    async with FrameSink(nc, SUBJECT, "r1", heartbeat_s=60) as sink:
        await sink.send(delta(sink, "first"))
        await asyncio.sleep(0)  # one turn of the loop, no timer: the delta is on its way
        assert sink.published == 1
        # Nothing else is sent until the first delta has reached the subscriber.
        await eventually(lambda: len(received) == 1)
        assert received == [DeltaFrame(request_id="r1", seq=1, content="first")]
        await sink.send(delta(sink, "second"))
        await eventually(lambda: len(received) == 2)
        assert received[1] == DeltaFrame(request_id="r1", seq=2, content="second")
        await finish(sink)
    assert sink.published == 4


async def test_a_long_run_of_ready_deltas_is_split_into_bounded_frames(nc: NATS) -> None:
    received = await listen(nc)
    count = MAX_COALESCED + 3
    async with FrameSink(nc, SUBJECT, "r1", heartbeat_s=60) as sink:
        for n in range(count):
            await sink.send(delta(sink, str(n)))
        await finish(sink)
    await eventually(lambda: len(received) == 4)
    first, second = received[:2]
    assert isinstance(first, DeltasFrame)
    assert isinstance(second, DeltasFrame)
    assert (len(first.deltas), len(second.deltas), second.seq) == (MAX_COALESCED, 3, MAX_COALESCED + 1)
    assert [d.content for d in first.deltas + second.deltas] == [str(n) for n in range(count)]


async def test_the_terminal_frame_is_published_when_send_returns(nc: NATS) -> None:
    async with FrameSink(nc, SUBJECT, "r1", heartbeat_s=60) as sink:
        await sink.send(delta(sink, "only"))
        await finish(sink)
        assert sink.published == 3  # the delta, usage and done: none left queued
        await sink.send(delta(sink, "late"))  # after the terminal frame: dropped
    assert sink.published == 3
