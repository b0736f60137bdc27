"""The worker as the gateway meets it on the bus: it accepts or refuses each `chat.request` at once,
streams the answer on the reply subject, stops the provider call on a cancel addressed to it, and
answers `chat.models`."""

from __future__ import annotations

import asyncio

from lobe.chat_worker.deployments import Deployment, RoutedModel
from lobe.chat_worker.providers.mock import mock_answer
from lobe.devtools.fake_upstream import FakeUpstream, Reply
from lobe.devtools.loadtest.shape import Shape, text_of
from lobe.devtools.loadtest.wire import Answers
from lobe.devtools.provider_fixtures import load
from lobe.devtools.suite.fixtures import StartWorker
from lobe.devtools.waiting import eventually
from lobe.shared.bus import ensure_streams
from lobe.shared.events.chat import (
    CHAT_MODELS,
    AcceptedFrame,
    DeltaFrame,
    DoneFrame,
    ErrorFrame,
    ModelList,
    UsageFrame,
    decode_frame,
)
from lobe.shared.events.streams import USAGE

from .support import ScriptedGateway, body, openai_at, routing

MOCK = RoutedModel(name="mock", deployments=[Deployment(name="mock-1", provider="mock")])
TEXT = load("openai/chat_stream_text.sse")


async def test_a_request_is_accepted_then_answered_as_numbered_deltas_then_usage_then_done(
    chat_worker: StartWorker, scripted_gateway: ScriptedGateway
) -> None:
    worker = await chat_worker(routing(MOCK))
    request = body("mock", "Hello worker")
    answer = await scripted_gateway.ask(request)
    assert answer.reply == AcceptedFrame(
        request_id=answer.request_id, seq=0, worker_id=worker.settings.worker_id
    )
    frames = answer.content
    *deltas, usage, done = frames
    assert all(isinstance(f, DeltaFrame) for f in deltas)
    assert answer.text == "".join(mock_answer(request))
    assert [f.seq for f in answer.frames] == list(range(1, len(answer.frames) + 1))  # heartbeats too
    first = answer.deltas[0]
    assert first.route is not None  # the first delta says who answers: the client's headers
    assert (first.route.deployment, first.route.provider, first.route.attempts) == ("mock-1", "mock", 1)
    assert all(d.route is None for d in answer.deltas[1:])
    assert isinstance(usage, UsageFrame)
    assert (usage.provider, usage.usage.completion_tokens, usage.usage.basis) == (
        "mock",
        len(deltas),
        "provider",
    )
    assert isinstance(done, DoneFrame)
    assert (done.finish_reason, done.provider) == ("stop", "mock")
    [event] = await scripted_gateway.usage_of(answer.request_id)
    assert (event.status, event.deployment, event.user_id, event.attempts) == ("ok", "mock-1", "alice", 1)
    assert event.usage.completion_tokens == len(deltas)
    kept = await scripted_gateway.kept_usage()
    assert kept[answer.request_id] == event  # on JetStream, keyed by the request id


async def test_a_model_the_worker_does_not_route_is_refused_with_404_before_any_work(
    chat_worker: StartWorker, scripted_gateway: ScriptedGateway
) -> None:
    await chat_worker(routing(MOCK))
    answer = await scripted_gateway.send(body("gpt-nothing"))
    assert isinstance(answer.reply, ErrorFrame)
    assert (answer.reply.status, answer.reply.code, answer.reply.retryable) == (404, "model_not_found", False)
    assert "gpt-nothing" in answer.reply.message
    assert answer.frames == []
    assert await scripted_gateway.kept_usage() == {}  # refused before any work: nothing to bill


async def test_a_malformed_request_is_refused_with_400_without_quoting_it(
    chat_worker: StartWorker, scripted_gateway: ScriptedGateway
) -> None:
    await chat_worker(routing(MOCK))
    raw = b'{"request_id": "r1", "reply_to": "_INBOX.x", "body": {"model": "mock", "secret": "sk-live-1"}}'
    answer = await scripted_gateway.send_raw("r1", "_INBOX.x", raw)
    assert isinstance(answer.reply, ErrorFrame)
    assert (answer.reply.status, answer.reply.code) == (400, "invalid_event")
    assert "sk-live-1" not in answer.reply.model_dump_json()


async def test_a_worker_at_its_concurrency_limit_refuses_at_once_with_a_retryable_503(
    chat_worker: StartWorker, scripted_gateway: ScriptedGateway, upstream: FakeUpstream
) -> None:
    upstream.push(TEXT.reply(hold_after=len(TEXT.body) // 2))  # the first answer stays in flight
    await chat_worker(
        routing(RoutedModel(name="chat", deployments=[openai_at("d", upstream)])), worker_max_concurrency=1
    )
    first = await scripted_gateway.send(body("chat"))
    assert isinstance(first.reply, AcceptedFrame)
    await eventually(lambda: first.deltas)
    second = await scripted_gateway.send(body("chat"))
    assert isinstance(second.reply, ErrorFrame)
    assert (second.reply.status, second.reply.code, second.reply.retryable) == (503, "worker_saturated", True)
    assert len(upstream.requests) == 1


async def test_a_cancel_addressed_to_the_worker_closes_the_upstream_call_and_bills_the_partial_answer(
    chat_worker: StartWorker, scripted_gateway: ScriptedGateway, upstream: FakeUpstream
) -> None:
    upstream.push(TEXT.reply(hold_after=len(TEXT.body) // 2))  # a provider still generating
    deployment = openai_at("d", upstream).model_copy(update={"disconnect_billing": "bill_full"})
    worker = await chat_worker(routing(RoutedModel(name="chat", deployments=[deployment])))
    answer = await scripted_gateway.send(body("chat"))
    await eventually(lambda: answer.deltas)
    assert not upstream.client_closed.is_set()
    await scripted_gateway.cancel(answer)
    await eventually(upstream.client_closed.is_set)  # the provider stops generating (and charging)
    [event] = await scripted_gateway.usage_of(answer.request_id)
    assert (event.status, event.error_code, event.usage.basis) == ("cancelled", "cancelled", "partial")
    assert event.usage.source == "estimated"  # the provider reports usage at its end, never reached
    assert event.disconnect_billing == "bill_full"  # the deployment's, for billing to apply
    assert event.usage.completion_tokens > 0
    await eventually(lambda: not worker.runs)
    assert answer.terminal is None  # the gateway gave up on it: no frame is owed
    assert len(await scripted_gateway.usage_of(answer.request_id)) == 1


async def test_chat_models_lists_each_model_with_the_upstreams_it_reaches(
    chat_worker: StartWorker, scripted_gateway: ScriptedGateway, upstream: FakeUpstream
) -> None:
    chat = RoutedModel(name="chat", deployments=[openai_at("d", upstream)], fallbacks=["mock"])
    await chat_worker(routing(chat, MOCK))
    reply = await scripted_gateway.nc.request(CHAT_MODELS, b"", timeout=5)
    listed = {
        m.id: {(u.provider, u.model) for u in m.reaches}
        for m in ModelList.model_validate_json(reply.data).models
    }
    assert listed == {"chat": {("openai", "upstream-model"), ("mock", "mock")}, "mock": {("mock", "mock")}}


def twenty_chunk_stream() -> bytes:
    """The body `make bench`'s fake upstream streams: 20 content deltas (lobe.devtools.loadtest)."""
    head, deltas, tail = Answers(Shape(chunks=20)).stream("upstream-model")
    chunked = head.split(b"\r\n\r\n", 1)[1] + b"".join(deltas) + tail
    body, rest = b"", chunked  # FakeUpstream frames the HTTP chunks itself
    while rest:
        size, rest = rest.split(b"\r\n", 1)
        body, rest = body + rest[: int(size, 16)], rest[int(size, 16) + 2 :]
    return body


async def test_a_stream_read_in_one_go_is_published_as_one_deltas_frame_not_a_message_per_delta(
    chat_worker: StartWorker, scripted_gateway: ScriptedGateway, upstream: FakeUpstream
) -> None:
    stream = twenty_chunk_stream()
    upstream.push(Reply(body=stream, max_chunk=len(stream)))  # one write: the worker reads it at once
    await chat_worker(routing(RoutedModel(name="chat", deployments=[openai_at("d", upstream)])))
    answer = await scripted_gateway.ask(body("chat"))
    assert isinstance(answer.terminal, DoneFrame)
    assert len(answer.deltas) == 20
    assert [f.seq for f in answer.content] == list(range(1, 23))
    # 22 messages before 3.10.0 (a delta each, usage, done); the deltas, usage, done now.
    assert [decode_frame(m).type for m in answer.messages] == ["deltas", "usage", "done"]


async def test_deltas_are_published_as_they_come_not_held_for_the_rest_of_the_stream(
    chat_worker: StartWorker, scripted_gateway: ScriptedGateway, upstream: FakeUpstream
) -> None:
    release = asyncio.Event()
    stream = twenty_chunk_stream()
    upstream.push(Reply(body=stream, split_events=True, release_last=release))  # [DONE] held back
    await chat_worker(routing(RoutedModel(name="chat", deployments=[openai_at("d", upstream)])))
    answer = await scripted_gateway.send(body("chat"))
    await eventually(lambda: len(answer.deltas) == 20)  # all of them before the stream ends
    release.set()
    assert isinstance(await answer.ended(), DoneFrame)
    assert answer.text == "".join(text_of(i) for i in range(20))


async def test_a_cancel_landing_while_the_usage_event_waits_for_jetstream_does_not_lose_it(
    chat_worker: StartWorker, scripted_gateway: ScriptedGateway
) -> None:
    """During a stream leader's election the usage publish retries for seconds, before the terminal
    frames; a gateway that gives up on the answer then (a stream gap, a timeout) cancels the run.
    The answer was generated: its usage must still reach the ledger."""
    worker = await chat_worker(routing(MOCK))
    js = scripted_gateway.nc.jetstream()
    await js.delete_stream(USAGE.name)  # as while no leader answers: each publish attempt fails
    request = body("mock", "Hello worker")
    answer = await scripted_gateway.send(request)
    await scripted_gateway.usage_of(answer.request_id)  # the worker is retrying the publish
    assert answer.terminal is None  # usage is recorded before the terminal frames
    await scripted_gateway.cancel(answer)
    await eventually(lambda: not worker.runs)  # the cancel reached the run
    await ensure_streams(js, replicas=1)  # a leader again

    async def kept() -> bool:
        return answer.request_id in await scripted_gateway.kept_usage()

    await eventually(kept, within_s=30)  # the publish's next attempt, up to 2 s + 1 s away
    event = (await scripted_gateway.kept_usage())[answer.request_id]
    assert (event.status, event.usage.completion_tokens) == ("ok", len(mock_answer(request)))
    assert answer.terminal is None  # the gateway gave up on it: no frame is owed
