"""Every bus call is traced, in memory and on a real nats-server: a request's CLIENT span is the
parent of the responder's SERVER span, a fact's PRODUCER span the parent of its consumer's
per-message span, and a consumed batch a trace of its own linked to each message's producer; an
Object Store put and read, and a per-request stream's messages, the same way."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import nats
from nats.aio.msg import Msg
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags

from lobe.shared.bus import Bus, ask
from lobe.shared.bus.listen import listen, publish
from lobe.shared.bus.objects import put_bytes, read_stream
from lobe.shared.catalog import CHAT_WORKER
from lobe.shared.events.billing import BUDGET_RESERVE, BudgetDecision
from lobe.shared.events.chat import CHAT_CANCEL, ChatCancelled
from lobe.shared.events.media import MEDIA_BUCKET, SPEECH_AUDIO, SpeechChunk
from lobe.shared.events.streams import BILLING_CONSUMER, USAGE
from lobe.shared.events.usage import USAGE_RECORDED

from . import test_bus_layer
from .test_bus_layer import ANSWER_WAIT_S, UNANSWERED_WAIT_S, Pair, decide, reserve, until, usage

buses = test_bus_layer.buses  # the fixture: each test in memory and on a real nats-server


def named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == name]


def child_of(span: ReadableSpan, parent: ReadableSpan) -> bool:
    return span.parent is not None and span.parent.span_id == parent.context.span_id


async def test_a_responders_span_is_a_server_child_of_the_askers_client_span(
    buses: Pair, spans: InMemorySpanExporter
) -> None:
    await buses.billing.responds(BUDGET_RESERVE, decide)
    with trace.get_tracer("test").start_as_current_span("gateway request") as outer:
        assert isinstance(
            await buses.gateway.request(BUDGET_RESERVE, reserve("kim"), ANSWER_WAIT_S), BudgetDecision
        )
    await until(lambda: named(spans, f"process {BUDGET_RESERVE}"))
    [sent] = named(spans, f"send {BUDGET_RESERVE}")
    [served] = named(spans, f"process {BUDGET_RESERVE}")
    assert sent.kind is SpanKind.CLIENT
    assert served.kind is SpanKind.SERVER
    assert sent.parent is not None
    assert sent.parent.span_id == outer.get_span_context().span_id
    assert child_of(served, sent)
    assert served.context.trace_id == outer.get_span_context().trace_id
    assert dict(served.attributes or {}) == {
        "messaging.system": "nats",
        "messaging.operation.type": "process",
        "messaging.destination.name": BUDGET_RESERVE,
    }


async def test_silence_and_a_handlers_bug_are_error_spans(buses: Pair, spans: InMemorySpanExporter) -> None:
    await buses.billing.responds(BUDGET_RESERVE, decide)
    assert await buses.gateway.request(BUDGET_RESERVE, reserve("bug"), UNANSWERED_WAIT_S) is None
    await until(lambda: named(spans, f"process {BUDGET_RESERVE}"))
    [sent] = named(spans, f"send {BUDGET_RESERVE}")
    [served] = named(spans, f"process {BUDGET_RESERVE}")
    assert sent.status.status_code is StatusCode.ERROR
    assert (sent.attributes or {})["error.type"] == "unanswered"
    assert served.status.status_code is StatusCode.ERROR
    assert [e.name for e in served.events] == ["exception"]


async def test_a_consumed_batch_links_to_each_producer_and_each_message_joins_its_producers_trace(
    buses: Pair, spans: InMemorySpanExporter
) -> None:
    consumed = asyncio.Event()
    tracer = trace.get_tracer("test")

    acked: list[Msg] = []

    async def handle(msgs: Sequence[Msg]) -> float:
        with tracer.start_as_current_span("ledger write"):
            for msg in msgs:
                await msg.ack()
                acked.append(msg)
        if len(acked) == 2:
            consumed.set()
        return 0.0

    # The producer's trace is sampled for u0 only: u1's would make a span that nobody keeps.
    unsampled = SpanContext(trace_id=7, span_id=7, is_remote=True, trace_flags=TraceFlags(TraceFlags.DEFAULT))
    await buses.billing.consume(USAGE, BILLING_CONSUMER, 10, handle, wait_s=0.5)
    with tracer.start_as_current_span("chat.run") as run:
        assert await buses.gateway.publish_fact(USAGE_RECORDED, usage("u0"))
    with trace.use_span(NonRecordingSpan(unsampled)):
        assert await buses.gateway.publish_fact(USAGE_RECORDED, usage("u1"))
    await asyncio.wait_for(consumed.wait(), ANSWER_WAIT_S)
    await until(lambda: len(named(spans, "ledger write")) == len(named(spans, f"process {USAGE.name}")))

    [published] = named(spans, f"send {USAGE_RECORDED}")  # u1's publish was not sampled either
    assert published.kind is SpanKind.PRODUCER
    assert child_of(published, _span(run))
    batches = named(spans, f"process {USAGE.name}")
    linked = {(link.context.trace_id, link.context.span_id) for b in batches for link in b.links}
    assert (published.context.trace_id, published.context.span_id) in linked
    assert all(b.kind is SpanKind.CONSUMER and b.parent is None for b in batches)  # roots
    [each] = named(spans, f"process {USAGE_RECORDED}")
    assert each.kind is SpanKind.CONSUMER
    assert child_of(each, published)
    [batch] = [b for b in batches if b.context.span_id in {link.context.span_id for link in each.links}]
    # The consumer's own work happens in the batch's span (u0 and u1 may come in one batch or two).
    assert any(child_of(write, batch) for write in named(spans, "ledger write"))


def _span(span: trace.Span) -> ReadableSpan:
    assert isinstance(span, ReadableSpan)
    return span


async def test_an_ask_outside_the_bus_carries_the_current_context(
    nats_url: str, spans: InMemorySpanExporter
) -> None:
    nc = await nats.connect(nats_url)
    worker = Bus.over(nc, CHAT_WORKER)
    heard: list[str] = []
    await worker.responds(CHAT_CANCEL, lambda event: heard.append(event.request_id), worker_id="w1")
    with trace.get_tracer("test").start_as_current_span("gateway request") as outer:
        await ask(nc, "chat.cancel.w1", ChatCancelled(request_id="r1").encode(), UNANSWERED_WAIT_S)
    await until(lambda: named(spans, f"process {CHAT_CANCEL}"))
    await worker.stop_handlers()
    await nc.close()
    # Named by the catalog's pattern, whatever the worker: span names stay few.
    [cancel] = named(spans, f"process {CHAT_CANCEL}")
    assert cancel.kind is SpanKind.CONSUMER  # nobody waits on a cancel's reply
    assert (cancel.attributes or {})["messaging.destination.name"] == "chat.cancel.w1"
    assert cancel.parent is not None
    assert cancel.parent.span_id == outer.get_span_context().span_id
    assert heard == ["r1"]


async def test_an_objects_read_is_linked_to_its_put_whose_context_rides_in_the_meta_message(
    nats_url: str, spans: InMemorySpanExporter
) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    data = bytes(range(256)) * 1024  # two chunks
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("gateway upload") as upload:
        assert await put_bytes(js, "traced", data) == len(data)
    with tracer.start_as_current_span("worker run") as run:
        assert b"".join([chunk async for chunk in read_stream(js, "traced")]) == data
    await nc.close()
    [put] = named(spans, f"send {MEDIA_BUCKET}")
    [read] = named(spans, f"process {MEDIA_BUCKET}")
    assert (put.kind, read.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)
    assert put.parent is not None
    assert put.parent.span_id == upload.get_span_context().span_id
    assert read.parent is not None
    assert read.parent.span_id == run.get_span_context().span_id
    assert [link.context.span_id for link in read.links] == [put.context.span_id]
    for span in (put, read):
        assert (span.attributes or {})["lobe.object.name"] == "traced"
        assert (span.attributes or {})["lobe.object.size"] == len(data)


async def test_a_listened_streams_each_message_is_a_consumer_child_of_its_send(
    nats_url: str, spans: InMemorySpanExporter
) -> None:
    nc = await nats.connect(nats_url)
    listening = await listen(nc, SPEECH_AUDIO, request_id="r9")
    with trace.get_tracer("test").start_as_current_span("worker run") as run:
        for seq in range(2):
            await publish(nc, SPEECH_AUDIO, SpeechChunk(request_id="r9", seq=seq, audio=""), request_id="r9")
    heard = [await listening.next(ANSWER_WAIT_S) for _ in range(2)]
    await listening.close()
    await nc.close()
    assert [getattr(chunk, "seq", None) for chunk in heard] == [0, 1]
    sent = named(spans, f"send {SPEECH_AUDIO}")
    processed = named(spans, f"process {SPEECH_AUDIO}")
    assert [s.kind for s in sent] == [SpanKind.PRODUCER] * 2
    assert all(s.parent is not None and s.parent.span_id == run.get_span_context().span_id for s in sent)
    assert [p.kind for p in processed] == [SpanKind.CONSUMER] * 2
    assert [p.parent.span_id if p.parent else None for p in processed] == [s.context.span_id for s in sent]
    assert {(p.attributes or {})["messaging.destination.name"] for p in processed} == {"speech.audio.r9"}
