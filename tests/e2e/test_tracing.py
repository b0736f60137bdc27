"""One trace per chat request: the gateway's HTTP span, the worker's run across NATS (W3C context
in the headers), the provider call with the GenAI attributes, and billing's ledger write, which
handles a batch of many requests' usage and links to each request's trace."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from lobe.billing.service import BillingService
from lobe.devtools.fake_upstream import FakeUpstream
from lobe.devtools.provider_fixtures import load

from .conftest import Suite, billing_settings
from .providers import UPSTREAM_MODEL, public_model, routed_worker
from .test_chat_path import MESSAGES
from .transcripts import expected_answer

TRANSCRIPT = "openai/chat_stream_text.sse"


async def finished(
    spans: InMemorySpanExporter, done: Callable[[Sequence[ReadableSpan]], bool], within_s: float = 15.0
) -> Sequence[ReadableSpan]:
    """The finished spans once `done` holds (the worker and billing end theirs after the answer)."""
    deadline = time.monotonic() + within_s
    while not done(found := spans.get_finished_spans()):
        assert time.monotonic() < deadline, f"spans never completed: {[s.name for s in found]}"
        await asyncio.sleep(0.02)
    return found


def named(found: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    matches = [span for span in found if span.name == name]
    assert len(matches) == 1, f"{len(matches)} spans named {name!r} in {[s.name for s in found]}"
    return matches[0]


async def test_worker_span_is_a_child_of_the_gateway_request_span(
    suite: Suite, spans: InMemorySpanExporter
) -> None:
    await suite.client.chat.completions.create(model="mock", messages=MESSAGES)
    found = await finished(spans, lambda s: {"chat.run", "POST /v1/chat/completions"} <= {x.name for x in s})
    server, run = named(found, "POST /v1/chat/completions"), named(found, "chat.run")
    assert run.context.trace_id == server.context.trace_id
    assert run.parent is not None
    assert run.parent.span_id == server.context.span_id
    assert run.attributes is not None
    assert run.attributes["gen_ai.request.model"] == "mock"
    # The mock is a provider like any other: its call has a span of its own.
    call = named(found, "chat mock")
    assert call.parent is not None
    assert call.parent.span_id == run.context.span_id


async def test_gateway_worker_provider_call_and_ledger_write_belong_to_one_trace(
    gateway_only: Suite,
    upstream: FakeUpstream,
    billing_db: str,
    spans: InMemorySpanExporter,
) -> None:
    transcript = load(TRANSCRIPT)
    expected = expected_answer(transcript)
    first_chunk = json.loads(transcript.body.split(b"\n")[0].removeprefix(b"data: "))
    upstream.push(transcript.reply())
    settings = billing_settings(gateway_only.nats_url, billing_db, "admin")
    async with (
        BillingService(settings),
        routed_worker(gateway_only.nats_url, "openai", upstream),
    ):
        spans.clear()  # start-up work (migrations, catalog sync) is not the request's
        answer = await gateway_only.client.chat.completions.create(
            model=public_model("openai"), messages=MESSAGES
        )
        assert answer.choices[0].message.content == expected.text

        def complete(found: Sequence[ReadableSpan]) -> bool:
            names = {span.name for span in found}
            return {"chat.run", "ledger write", "process usage.recorded"} <= names

        found = await finished(spans, complete)

    server = named(found, "POST /v1/chat/completions")
    run = named(found, "chat.run")
    call = named(found, f"chat {UPSTREAM_MODEL}")
    trace_id = server.context.trace_id
    assert server.kind is SpanKind.SERVER
    assert run.context.trace_id == call.context.trace_id == trace_id
    assert call.parent is not None
    assert call.parent.span_id == run.context.span_id
    assert call.kind is SpanKind.CLIENT
    assert dict(call.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": UPSTREAM_MODEL,
        "gen_ai.response.model": first_chunk["model"],  # the model that answered, as the provider says
        "gen_ai.response.finish_reasons": (expected.finish_reason,),
        "gen_ai.usage.input_tokens": expected.prompt_tokens,
        "gen_ai.usage.output_tokens": expected.completion_tokens,
        "server.address": "127.0.0.1",
    }

    # Billing writes batches of many requests' usage: its span is a trace of its own, linked to
    # the trace of each request it carries, through the context the usage event's headers hold.
    batch = named(found, "process usage.recorded")
    assert batch.kind is SpanKind.CONSUMER
    linked = {(link.context.trace_id, link.context.span_id) for link in batch.links}
    assert (trace_id, run.context.span_id) in linked
    write = named(found, "ledger write")
    assert write.parent is not None
    assert write.parent.span_id == batch.context.span_id
    assert (write.attributes or {})["lobe.ledger.rows_inserted"] == 1
