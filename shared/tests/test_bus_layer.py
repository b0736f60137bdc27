"""The bus layer's calls, each run twice: in memory (MemoryBus) and on a real nats-server (Bus),
so the in-memory bus unit tests rely on is held to what NATS does."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lobe.devtools.waiting import eventually
from lobe.shared.bus import Bus, MemoryBus, MessageTooLarge, NoResponders, Unanswered, ask, ensure_streams
from lobe.shared.catalog import BILLING, CHAT_WORKER, GATEWAY
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.billing import (
    BUDGET_RELEASE,
    BUDGET_RESERVE,
    BudgetDecision,
    BudgetRelease,
    BudgetReserve,
)
from lobe.shared.events.chat import (
    CHAT_CANCEL,
    CHAT_MODELS,
    CHAT_REQUEST,
    Caller,
    ChatCancelled,
    ChatRequested,
    ModelList,
    TokenUsage,
)
from lobe.shared.events.streams import BILLING_CONSUMER, USAGE
from lobe.shared.events.usage import USAGE_RECORDED, UsageRecorded

ANSWER_WAIT_S = 10.0
UNANSWERED_WAIT_S = 0.3


@dataclass
class Pair:
    """A responding service's bus, an asking service's bus, and the raw exchange (malformed bytes)."""

    billing: Bus | MemoryBus
    gateway: Bus | MemoryBus
    raw: Callable[[str, bytes, float], Awaitable[bytes | None]]


@pytest.fixture(params=["memory", pytest.param("nats", marks=pytest.mark.integration)])
async def buses(request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    if request.param == "memory":
        memory = MemoryBus(BILLING)

        async def in_memory(subject: str, data: bytes, wait_s: float) -> bytes | None:
            return await memory.ask(subject, data)

        yield Pair(memory, memory, in_memory)
        await memory.stop_handlers()
        return
    url = request.getfixturevalue("nats_url")
    responding, asking = await nats.connect(url), await nats.connect(url)
    await ensure_streams(responding.jetstream(), replicas=1)

    async def on_the_wire(subject: str, data: bytes, wait_s: float) -> bytes | None:
        return await ask(asking, subject, data, wait_s)

    billing = Bus.over(responding, BILLING)
    yield Pair(billing, Bus.over(asking, GATEWAY), on_the_wire)
    await billing.stop_handlers()
    await responding.close()
    await asking.close()


def reserve(user: str) -> BudgetReserve:
    return BudgetReserve(
        request_id=f"r-{user}", user_id=user, model="m", prompt_tokens_estimate=1, max_output_tokens=1
    )


async def decide(req: BudgetReserve) -> BudgetDecision:
    if req.user_id == "late":
        raise Unanswered(f"{req.request_id} arrived late", req.request_id)
    if req.user_id == "bug":
        raise RuntimeError("a bug")
    return BudgetDecision(request_id=req.request_id, admitted=req.user_id != "broke", reserved_usd=0.5)


async def test_a_command_is_decoded_answered_and_the_reply_decoded(buses: Pair) -> None:
    await buses.billing.responds(BUDGET_RESERVE, decide)
    reply = await buses.gateway.request(BUDGET_RESERVE, reserve("kim"), ANSWER_WAIT_S)
    assert isinstance(reply, BudgetDecision)
    assert (reply.request_id, reply.admitted, reply.reserved_usd) == ("r-kim", True, 0.5)


async def test_unanswered_on_purpose_malformed_or_a_bug_and_the_next_one_is(
    buses: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    await buses.billing.responds(BUDGET_RESERVE, decide)
    with caplog.at_level(logging.WARNING):
        assert await buses.gateway.request(BUDGET_RESERVE, reserve("late"), UNANSWERED_WAIT_S) is None
        assert await buses.gateway.request(BUDGET_RESERVE, reserve("bug"), UNANSWERED_WAIT_S) is None
        assert (
            await buses.raw(BUDGET_RESERVE, b'{"request_id": "r", "user_id": 7}', UNANSWERED_WAIT_S) is None
        )
        await until(lambda: len(caplog.records) >= 3)
    messages = [r.getMessage() for r in caplog.records]
    assert any("r-late arrived late; not answered" in m for m in messages)
    assert any(m.startswith("malformed billing.budget.reserve") and "user_id" in m for m in messages)
    bug = [r for r in caplog.records if "failed; not answered" in r.getMessage()]
    assert bug
    assert bug[0].exc_info is not None  # a bug is logged with its traceback
    reply = await buses.gateway.request(BUDGET_RESERVE, reserve("kim"), ANSWER_WAIT_S)
    assert isinstance(reply, BudgetDecision)


async def test_a_handler_may_turn_a_malformed_command_into_a_reply(buses: Pair) -> None:
    def refuse(_: Exception) -> BudgetDecision:
        return BudgetDecision(request_id="unknown", admitted=False, reserved_usd=0)

    await buses.billing.responds(BUDGET_RESERVE, decide, malformed=refuse)
    reply = await buses.raw(BUDGET_RESERVE, b"not json", ANSWER_WAIT_S)
    assert reply is not None
    assert BudgetDecision.decode(reply).admitted is False


async def test_a_handler_returning_nothing_is_answered_with_an_empty_body(buses: Pair) -> None:
    released: list[str] = []

    def release(req: BudgetRelease) -> None:
        released.append(req.request_id)

    await buses.billing.responds(BUDGET_RELEASE, release)
    reply = await buses.raw(
        BUDGET_RELEASE, BudgetRelease(request_id="r9", user_id="kim").encode(), ANSWER_WAIT_S
    )
    assert (reply, released) == (b"", ["r9"])


async def test_only_a_catalogued_consumer_may_respond(buses: Pair) -> None:
    # The catalog says chat workers answer chat.models, not billing.
    with pytest.raises(ValueError, match=r"billing is not a consumer of chat\.models"):
        await buses.billing.responds(CHAT_MODELS, lambda: ModelList(models=[]))


async def test_a_patterned_command_is_heard_on_its_concrete_subject(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    worker = Bus.over(nc, CHAT_WORKER)
    heard = asyncio.Event()

    def on_cancel(event: ChatCancelled) -> None:
        if event.request_id == "r1":
            heard.set()

    await worker.responds(CHAT_CANCEL, on_cancel, worker_id="w1")
    await nc.publish("chat.cancel.w2", ChatCancelled(request_id="r2").encode())
    await nc.publish("chat.cancel.w1", ChatCancelled(request_id="r1").encode())
    await asyncio.wait_for(heard.wait(), ANSWER_WAIT_S)
    await worker.stop_handlers()
    await nc.close()


async def test_concurrency_runs_that_many_handlers_at_once(buses: Pair) -> None:
    inside, most = 0, 0
    gate = asyncio.Event()

    async def slow(req: BudgetReserve) -> BudgetDecision:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        if inside == 3:
            gate.set()
        await asyncio.wait_for(gate.wait(), ANSWER_WAIT_S)
        inside -= 1
        return await decide(req)

    await buses.billing.responds(BUDGET_RESERVE, slow, concurrency=3)
    replies = await asyncio.gather(
        *(buses.gateway.request(BUDGET_RESERVE, reserve(f"u{i}"), ANSWER_WAIT_S) for i in range(3))
    )
    assert all(isinstance(r, BudgetDecision) for r in replies)
    assert most == 3


def usage(request_id: str) -> UsageRecorded:
    return UsageRecorded(
        request_id=request_id,
        user_id="kim",
        provider="mock",
        deployment="mock-1",
        model="m",
        usage=TokenUsage(prompt_tokens=1, completion_tokens=1),
        status="ok",
        duration_ms=1,
    )


async def test_consume_hands_batches_and_a_nak_comes_back(buses: Pair) -> None:
    seen: list[str] = []
    acked: set[str] = set()
    done = asyncio.Event()

    async def handle(msgs: Sequence[Msg]) -> float:
        for msg in msgs:
            request_id = UsageRecorded.decode(msg.data).request_id
            seen.append(request_id)
            if request_id == "u1" and seen.count("u1") == 1:
                await msg.nak()  # the first delivery fails; it must come back
                continue
            await msg.ack()
            acked.add(request_id)
        if acked == {"u0", "u1", "u2"}:
            done.set()
        return 0.0

    await buses.billing.consume(USAGE, BILLING_CONSUMER, 10, handle, wait_s=0.5)
    for i in range(3):
        assert await buses.gateway.publish_fact(USAGE_RECORDED, usage(f"u{i}"))
    await asyncio.wait_for(done.wait(), ANSWER_WAIT_S)
    assert seen.count("u1") == 2


async def until(condition: Callable[[], Any], wait_s: float = ANSWER_WAIT_S) -> None:
    for _ in range(int(wait_s / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)


async def test_exchange_tells_no_responder_from_silence(buses: Pair) -> None:
    billing, gateway = buses.billing, buses.gateway
    with pytest.raises(NoResponders):
        await gateway.exchange(
            BUDGET_RESERVE, reserve("anyone"), ANSWER_WAIT_S
        )  # at once, not after ANSWER_WAIT_S

    def decide(req: BudgetReserve) -> BudgetDecision:
        if req.user_id == "late":
            raise Unanswered("too late")
        return BudgetDecision(request_id=req.request_id, admitted=True)

    await billing.responds(BUDGET_RESERVE, decide)
    with pytest.raises(TimeoutError):
        await gateway.exchange(BUDGET_RESERVE, reserve("late"), UNANSWERED_WAIT_S)
    reply = await gateway.exchange(BUDGET_RESERVE, reserve("alice"), ANSWER_WAIT_S)
    assert BudgetDecision.model_validate_json(reply).request_id == "r-alice"


@pytest.mark.integration
async def test_exchange_refuses_a_message_past_the_servers_limit_before_sending(nc: NATS) -> None:
    gateway = Bus.over(nc, GATEWAY)
    content = "x" * nc.max_payload
    body = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": content}]}
    )
    huge = ChatRequested(request_id="r", caller=Caller(user_id="u"), body=body, reply_to="chat.reply.r.1")
    with pytest.raises(MessageTooLarge) as caught:
        await gateway.exchange(CHAT_REQUEST, huge, ANSWER_WAIT_S)  # no worker needed: nothing leaves
    assert (caught.value.size > caught.value.limit, caught.value.limit) == (True, nc.max_payload)


async def test_exchange_and_publish_carry_the_trace_context(buses: Pair, spans: InMemorySpanExporter) -> None:
    billing, gateway = buses.billing, buses.gateway
    seen: list[str] = []

    def remember(_: object, headers: dict[str, str] | None) -> BudgetDecision:
        seen.append((headers or {}).get("traceparent", ""))
        return BudgetDecision(request_id="r", admitted=True)

    await billing.responds(BUDGET_RESERVE, remember, with_headers=True)
    await billing.responds(BUDGET_RELEASE, remember, with_headers=True)
    with trace.get_tracer("test").start_as_current_span("chat") as span:
        await gateway.exchange(BUDGET_RESERVE, reserve("alice"), ANSWER_WAIT_S)
        await gateway.publish(BUDGET_RELEASE, BudgetRelease(request_id="r", user_id="alice"))
        trace_id = format(span.get_span_context().trace_id, "032x")
    await eventually(lambda: len(seen) == 2)
    assert [value.split("-")[1] for value in seen] == [trace_id, trace_id]
