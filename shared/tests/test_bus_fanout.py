"""The bus's calls for what every replica hears and what one asker reads: `subscribe` (a
broadcast), `publish` (a core command or fact), `replies` (a reply stream) and `exchange` (the
raw request-reply). Run in memory (MemoryBus) and on a real nats-server (Bus) where both apply,
so the in-memory bus is held to what NATS does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import nats
import pytest
from pydantic import ValidationError

from lobe.devtools.waiting import eventually
from lobe.shared.bus import (
    Bus,
    MemoryBus,
    ensure_streams,
    flush,
)
from lobe.shared.catalog import BILLING, CHAT_WORKER, GATEWAY, subject
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.auth import AUTH_LOGIN_ENDED, LoginEnded
from lobe.shared.events.cache import CACHE_RESPONSE_INVALIDATED, ResponsesInvalidated
from lobe.shared.events.chat import (
    CHAT_REPLY,
    CHAT_REQUEST,
    AcceptedFrame,
    Caller,
    ChatRequested,
    DeltaFrame,
    HeartbeatFrame,
)

WAIT_S = 10.0
SILENCE_S = 0.3


@dataclass
class Replicas:
    """Two gateway replicas' buses, and what a worker or billing sends as raw bytes."""

    one: Bus | MemoryBus
    two: Bus | MemoryBus
    send_raw: Callable[[str, bytes], Awaitable[None]]
    # Until replica one's subscriptions are at the server (a reply stream's are only live for its
    # own connection's next message: the request that names it).
    flush_one: Callable[[], Awaitable[None]]


@pytest.fixture(params=["memory", pytest.param("nats", marks=pytest.mark.integration)])
async def replicas(request: pytest.FixtureRequest) -> AsyncIterator[Replicas]:
    if request.param == "memory":
        memory = MemoryBus(GATEWAY)  # one process: both "replicas" are its subscribers

        async def in_memory(to: str, data: bytes) -> None:
            await memory._publish(to, data, {})

        async def nothing_to_wait_for() -> None:
            return None

        yield Replicas(memory, memory, in_memory, nothing_to_wait_for)
        await memory.stop_handlers()
        return
    url = request.getfixturevalue("nats_url")
    connections = [await nats.connect(url) for _ in range(3)]
    await ensure_streams(connections[0].jetstream(), replicas=1)
    raw = connections[2]

    async def on_the_wire(to: str, data: bytes) -> None:
        await raw.publish(to, data)
        await flush(raw)

    async def flush_one() -> None:
        await flush(connections[0])

    yield Replicas(
        Bus.over(connections[0], GATEWAY), Bus.over(connections[1], GATEWAY), on_the_wire, flush_one
    )
    for connection in connections:
        await connection.close()


async def test_every_replica_hears_a_broadcast_and_a_fact_decoded(replicas: Replicas) -> None:
    heard: list[tuple[str, object]] = []
    for name, bus in (("one", replicas.one), ("two", replicas.two)):
        await bus.subscribe(CACHE_RESPONSE_INVALIDATED, lambda fact, n=name: heard.append((n, fact)))
        await bus.subscribe(AUTH_LOGIN_ENDED, lambda fact, n=name: heard.append((n, fact)))
    invalidated = ResponsesInvalidated(request_id="i1", user_id="alice", model=None)
    ended = LoginEnded(
        request_id="s1", user_id="alice", session_id="s1", expires_at=2**31, reason="signed_out"
    )
    await replicas.one.publish(CACHE_RESPONSE_INVALIDATED, invalidated)
    assert await replicas.one.publish_fact(AUTH_LOGIN_ENDED, ended)
    await eventually(lambda: len(heard) == 4)
    assert sorted((n, type(f).__name__) for n, f in heard) == [
        ("one", "LoginEnded"),
        ("one", "ResponsesInvalidated"),
        ("two", "LoginEnded"),
        ("two", "ResponsesInvalidated"),
    ]
    assert {f for _, f in heard} == {invalidated, ended}


async def test_a_garbled_broadcast_is_dropped_and_the_next_one_heard(
    replicas: Replicas, caplog: pytest.LogCaptureFixture
) -> None:
    heard: list[ResponsesInvalidated] = []
    await replicas.one.subscribe(CACHE_RESPONSE_INVALIDATED, heard.append)
    await replicas.send_raw(CACHE_RESPONSE_INVALIDATED, b'{"user_id": 7}')
    await replicas.send_raw(
        CACHE_RESPONSE_INVALIDATED, ResponsesInvalidated(request_id="i2", model="m").encode()
    )
    await eventually(lambda: len(heard) == 1)
    assert heard[0].model == "m"
    assert "malformed cache.response.invalidated" in caplog.text


async def test_subscribe_and_publish_keep_to_the_catalog() -> None:
    with pytest.raises(ValueError, match="queue group"):  # one worker takes each: responds
        await MemoryBus(CHAT_WORKER).subscribe(CHAT_REQUEST, lambda event: None)
    with pytest.raises(ValueError, match="billing is not a consumer"):
        await MemoryBus(BILLING).subscribe(CACHE_RESPONSE_INVALIDATED, lambda fact: None)
    ended = LoginEnded(request_id="s1", user_id="u", session_id="s1", expires_at=1, reason="signed_out")
    with pytest.raises(ValueError, match="publish_fact"):  # no ack, no duplicate window: refused
        await MemoryBus(GATEWAY).publish(AUTH_LOGIN_ENDED, ended)


async def test_a_reply_stream_reads_its_own_subject_in_order_and_a_garbled_frame_raises(
    replicas: Replicas,
) -> None:
    replies = await replicas.one.replies(CHAT_REPLY, request_id="r1", offer="1")
    assert replies.subject == subject(CHAT_REPLY, request_id="r1", offer=1)
    await replicas.flush_one()
    other = subject(CHAT_REPLY, request_id="r1", offer=2)  # a worker presumed dead, say
    send = replicas.send_raw
    await send(other, DeltaFrame(request_id="r1", seq=1, content="stale").model_dump_json().encode())
    await send(replies.subject, DeltaFrame(request_id="r1", seq=1, content="Hi").model_dump_json().encode())
    await send(replies.subject, HeartbeatFrame(request_id="r1", seq=2).model_dump_json().encode())
    await send(replies.subject, b'{"type": "teleport"}')
    async with asyncio.timeout(WAIT_S):
        first, second = replies.decode(await replies.get()), replies.decode(await replies.get())
        with pytest.raises(ValidationError):
            replies.decode(await replies.get())
    assert (first, second) == (
        DeltaFrame(request_id="r1", seq=1, content="Hi"),
        HeartbeatFrame(request_id="r1", seq=2),
    )
    await replies.close()
    await send(replies.subject, HeartbeatFrame(request_id="r1", seq=3).model_dump_json().encode())
    await asyncio.sleep(SILENCE_S)
    assert replies.empty()  # closed: nothing more arrives


@pytest.mark.integration
async def test_a_reply_stream_is_live_for_the_request_that_follows_it(nats_url: str) -> None:
    """No flush between the subscription and the request: the server keeps one connection's order,
    so a worker answering at once never publishes to a subject nobody hears yet."""
    gateway_nc, worker_nc = await nats.connect(nats_url), await nats.connect(nats_url)
    gateway, worker = Bus.over(gateway_nc, GATEWAY), Bus.over(worker_nc, CHAT_WORKER)

    async def accept_and_answer_at_once(event: ChatRequested) -> AcceptedFrame:
        await worker_nc.publish(
            event.reply_to, HeartbeatFrame(request_id=event.request_id, seq=1).model_dump_json().encode()
        )
        return AcceptedFrame(request_id=event.request_id, seq=0, worker_id="w1")

    await worker.responds(CHAT_REQUEST, accept_and_answer_at_once)
    body = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    )
    for n in range(50):
        replies = await gateway.replies(CHAT_REPLY, request_id=f"r{n}", offer="1")
        event = ChatRequested(
            request_id=f"r{n}", caller=Caller(user_id="u"), body=body, reply_to=replies.subject
        )
        accepted = AcceptedFrame.model_validate_json(await gateway.exchange(CHAT_REQUEST, event, WAIT_S))
        assert accepted.request_id == f"r{n}"
        async with asyncio.timeout(WAIT_S):
            assert replies.decode(await replies.get()) == HeartbeatFrame(request_id=f"r{n}", seq=1)
        await replies.close()
    await worker.stop_handlers()
    await gateway_nc.close()
    await worker_nc.close()
