"""The gateway's side of the chat protocol against a scripted worker on a real NATS server: every
way an answer can go wrong ends in an explicit error, and cancels reach the owning worker only."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import nats
import pytest
from nats.aio.client import Client as NATS

from lobe.gateway.dispatch import ChatDispatcher, Dispatch, Idle, WorkerLost
from lobe.gateway.settings import GatewaySettings
from lobe.shared.bus import Bus, flush
from lobe.shared.catalog import GATEWAY
from lobe.shared.events.chat import DeltaFrame, DeltasFrame, DoneFrame, ErrorFrame, HeartbeatFrame, UsageFrame
from lobe.shared.events.chat_wire import WireDelta
from lobe.shared.openai_errors import ApiError

from .support import BODY, CALLER, Script, ScriptedWorker, accepted, delta, finish


def dispatcher(nc: NATS, **overrides: object) -> ChatDispatcher:
    # Short enough to keep the suite quick, long enough for a loaded 2-core machine.
    fast = {"worker_silence_s": 0.5, "accept_timeout_s": 1.0, "saturation_wait_s": 0.5}
    settings = GatewaySettings(nats_url="unused", **{**fast, **overrides})
    return ChatDispatcher(Bus.over(nc, GATEWAY), settings)


async def worker(worker_nc: NATS, *scripts: Callable[[str], Script], worker_id: str = "w1") -> ScriptedWorker:
    return await ScriptedWorker(worker_nc, worker_id, list(scripts)).start()


async def collect(dispatch: Dispatch) -> list[object]:
    """The answer's frames, without the idle marks between them."""
    return [frame async for frame in dispatch.frames() if not isinstance(frame, Idle)]


def whole_answer(request_id: str) -> Script:
    return accepted(request_id), [
        delta(request_id, 1, "Hel"),
        delta(request_id, 2, "lo"),
        *finish(request_id, 3),
    ]


async def test_frames_arrive_in_order_without_heartbeats_and_end_at_done(nc: NATS, worker_nc: NATS) -> None:
    def with_heartbeat(rid: str) -> Script:
        beat = HeartbeatFrame(request_id=rid, seq=1).model_dump_json().encode()
        return accepted(rid), [beat, delta(rid, 2, "Hi"), *finish(rid, 3)]

    await worker(worker_nc, with_heartbeat)
    dispatch = dispatcher(nc).open("r1", CALLER, BODY)
    frames = await collect(dispatch)
    assert [type(f) for f in frames] == [WireDelta, UsageFrame, DoneFrame]
    assert dispatch.owner == "w1"


def deltas(request_id: str, first: int, *texts: str) -> bytes:
    """A `deltas` frame (catalog 3.10.0), as a worker sends the deltas it had ready together."""
    parts = [DeltaFrame(request_id=request_id, seq=first + n, content=t) for n, t in enumerate(texts)]
    return DeltasFrame(request_id=request_id, seq=first, deltas=parts).model_dump_json().encode()


async def test_a_deltas_frame_is_read_as_its_deltas_one_by_one_among_single_delta_frames(
    nc: NATS, worker_nc: NATS
) -> None:
    def mixed(rid: str) -> Script:
        return accepted(rid), [
            delta(rid, 1, "a"),
            deltas(rid, 2, "b", "c", "d"),
            delta(rid, 5, "e"),
            *finish(rid, 6),
        ]

    await worker(worker_nc, mixed)
    frames = await collect(dispatcher(nc).open("r1", CALLER, BODY))
    assert [(type(f).__name__, f.seq) for f in frames] == [  # type: ignore[attr-defined]
        *[("WireDelta", seq) for seq in range(1, 6)],
        ("UsageFrame", 6),
        ("DoneFrame", 7),
    ]
    assert "".join(f.content for f in frames if isinstance(f, WireDelta) and f.content) == "abcde"


@pytest.mark.parametrize(
    "numbers",
    [(2, [2, 4]), (3, [3, 4])],
    ids=["a gap inside the frame", "the frame itself after a gap"],
)
async def test_a_gap_in_a_deltas_frame_is_an_error(
    nc: NATS, worker_nc: NATS, numbers: tuple[int, list[int]]
) -> None:
    first, seqs = numbers

    def gap(rid: str) -> Script:
        parts = [DeltaFrame(request_id=rid, seq=seq, content="x") for seq in seqs]
        frame = DeltasFrame(request_id=rid, seq=first, deltas=parts).model_dump_json().encode()
        return accepted(rid), [delta(rid, 1, "a"), frame]

    await worker(worker_nc, gap)
    with pytest.raises(ApiError) as caught:
        await collect(dispatcher(nc).open("r1", CALLER, BODY))
    assert (caught.value.status, caught.value.code) == (502, "stream_gap")


async def test_a_gap_in_frame_numbers_is_an_error_and_the_worker_keeps_ownership(
    nc: NATS, worker_nc: NATS
) -> None:
    def gap(rid: str) -> Script:
        return accepted(rid), [delta(rid, 1, "a"), delta(rid, 3, "c")]

    await worker(worker_nc, gap)
    dispatch = dispatcher(nc).open("r1", CALLER, BODY)
    with pytest.raises(ApiError) as caught:
        await collect(dispatch)
    assert (caught.value.status, caught.value.code) == (502, "stream_gap")
    assert not isinstance(caught.value, WorkerLost)  # the worker lives: it records the usage
    assert dispatch.owner == "w1"


@pytest.mark.parametrize(
    "frames",
    [
        [b"{not json"],
        [b'{"type": "delta", "request_id": "r1"}'],  # no seq
        [b'{"type": "teleport", "request_id": "r1", "seq": 1}'],
        [b'{"type": "deltas", "request_id": "r1", "seq": 1, "deltas": []}'],
        [b'{"type": "usage", "request_id": "r1", "seq": 1}'],  # decoded by the catalog's model
    ],
    ids=["not-json", "missing-field", "unknown-type", "empty-deltas", "usage-without-usage"],
)
async def test_a_malformed_frame_is_a_protocol_error(nc: NATS, worker_nc: NATS, frames: list[bytes]) -> None:
    await worker(worker_nc, lambda rid: (accepted(rid), frames))
    with pytest.raises(ApiError) as caught:
        await collect(dispatcher(nc).open("r1", CALLER, BODY))
    assert (caught.value.status, caught.value.code) == (502, "protocol_error")


async def test_an_accept_frame_inside_the_answer_is_a_protocol_error(nc: NATS, worker_nc: NATS) -> None:
    await worker(worker_nc, lambda rid: (accepted(rid), [accepted(rid).replace(b'"seq":0', b'"seq":1')]))
    with pytest.raises(ApiError) as caught:
        await collect(dispatcher(nc).open("r1", CALLER, BODY))
    assert caught.value.code == "protocol_error"


async def test_a_hand_over_answered_by_anything_but_accept_or_refusal_is_a_protocol_error(
    nc: NATS, worker_nc: NATS
) -> None:
    await worker(worker_nc, lambda rid: (delta(rid, 0, "eh"), []))
    with pytest.raises(ApiError) as caught:
        await collect(dispatcher(nc).open("r1", CALLER, BODY))
    assert (caught.value.status, caught.value.code) == (502, "protocol_error")


async def test_a_worker_error_frame_becomes_its_status_and_code(nc: NATS, worker_nc: NATS) -> None:
    def failing(rid: str) -> Script:
        error = ErrorFrame(request_id=rid, seq=1, status=429, code="rate_limited", message="slow down")
        return accepted(rid), [error.model_dump_json().encode()]

    await worker(worker_nc, failing)
    with pytest.raises(ApiError) as caught:
        await collect(dispatcher(nc).open("r1", CALLER, BODY))
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        429,
        "rate_limited",
        "slow down",
    )


async def test_a_worker_silent_before_its_first_token_is_replaced_on_a_new_reply_subject(
    nc: NATS, worker_nc: NATS
) -> None:
    silent = await worker(worker_nc, lambda rid: (accepted(rid, "dying"), []), whole_answer)
    dispatch = dispatcher(nc).open("r1", CALLER, BODY)
    frames = await collect(dispatch)
    assert isinstance(frames[-1], DoneFrame)
    first, second = silent.requests
    assert (first.attempt, second.attempt) == (1, 2)
    assert (first.reply_to, second.reply_to) == ("chat.reply.r1.1", "chat.reply.r1.2")
    assert dispatch.owner == "w1"


async def test_a_worker_silent_after_its_first_token_is_lost_not_replaced(nc: NATS, worker_nc: NATS) -> None:
    scripted = await worker(worker_nc, lambda rid: (accepted(rid), [delta(rid, 1, "half")]), whole_answer)
    dispatch = dispatcher(nc).open("r1", CALLER, BODY)
    received: list[object] = []

    async def read_all() -> None:
        async for frame in dispatch.frames():
            received.append(frame)

    with pytest.raises(WorkerLost) as caught:
        await read_all()
    assert caught.value.code == "worker_lost"
    assert [type(f) for f in received if not isinstance(f, Idle)] == [WireDelta]
    # Before waiting for a frame that is not there, the dispatch says so: the output then writes
    # what it holds, so a delta is never kept back while the next one is awaited.
    assert isinstance(received[-1], Idle)
    assert len(scripted.requests) == 1  # no second answer after the first token
    assert dispatch.owner is None  # presumed dead: it will record nothing


async def test_saturated_workers_are_retried_until_the_wait_is_spent_then_503(
    nc: NATS, worker_nc: NATS
) -> None:
    def saturated(rid: str) -> Script:
        refusal = ErrorFrame(request_id=rid, seq=0, status=503, code="worker_saturated", message="busy")
        return refusal.model_dump_json().encode(), []

    scripted = await worker(worker_nc, *[saturated] * 50)
    with pytest.raises(ApiError) as caught:
        await collect(dispatcher(nc).open("r1", CALLER, BODY))
    assert (caught.value.status, caught.value.code) == (503, "no_worker_available")
    assert caught.value.headers == {"Retry-After": "1"}
    assert len(scripted.requests) >= 2  # offered again while the saturation wait lasted


async def test_no_worker_running_is_503_at_once(nc: NATS) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ApiError) as caught:
        await collect(dispatcher(nc).open("r1", CALLER, BODY))
    assert (caught.value.status, caught.value.code) == (503, "no_worker_available")
    assert loop.time() - started < 0.5  # no responders, not the 1 s accept timeout


async def test_cancel_goes_to_the_worker_that_accepted(nc: NATS, worker_nc: NATS, nats_url: str) -> None:
    owner = await worker(
        worker_nc, lambda rid: (accepted(rid, "owner"), [delta(rid, 1, "a")]), worker_id="owner"
    )
    other_nc = await nats.connect(nats_url)
    try:
        bystander = await ScriptedWorker(other_nc, "bystander").start(take_requests=False)
        dispatch = dispatcher(nc, worker_silence_s=5.0).open("r1", CALLER, BODY)
        frames = dispatch.frames()
        first = await anext(frames)
        while isinstance(first, Idle):
            first = await anext(frames)
        assert isinstance(first, WireDelta)
        await frames.aclose()
        await dispatch.cancel("client_disconnected")
        await asyncio.wait_for(owner.cancelled.wait(), 2)
        await other_nc.flush()
    finally:
        await other_nc.close()
    assert [(c.request_id, c.reason) for c in owner.cancels] == [("r1", "client_disconnected")]
    assert bystander.cancels == []


async def test_a_client_leaving_during_the_hand_over_still_cancels_the_worker_that_takes_it(
    nc: NATS, worker_nc: NATS
) -> None:
    release = asyncio.Event()
    owner = ScriptedWorker(worker_nc, "late")

    async def slow_accept(msg: object) -> None:  # accepts only after the client has gone
        await release.wait()
        await msg.respond(accepted("r1", "late"))  # type: ignore[attr-defined]

    await worker_nc.subscribe("chat.request", queue="chat-worker", cb=slow_accept)
    await worker_nc.subscribe("chat.cancel.late", cb=owner._on_cancel)
    await flush(worker_nc)
    dispatch = dispatcher(nc, accept_timeout_s=2.0).open("r1", CALLER, BODY)
    reading = asyncio.create_task(collect(dispatch))
    await asyncio.sleep(0.1)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    release.set()
    await asyncio.wait_for(owner.cancelled.wait(), 2)
    assert [(c.request_id, c.reason) for c in owner.cancels] == [("r1", "client_disconnected")]
