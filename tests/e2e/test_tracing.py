"""One trace per chat request, across every service: the gateway's HTTP span and its Redis
commands, billing's key verification, budget reservation and settlement (the ledger write its
usage went into), the worker's run and the provider call, all through the W3C context the bus
carries in every message's headers (lobe.shared.bus.tracing)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from openai import AsyncOpenAI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import SecretStr

from lobe.billing.service import BillingService
from lobe.devtools.fake_upstream import FakeUpstream
from lobe.devtools.provider_fixtures import load
from lobe.shared.events.auth import AUTH_KEY_VERIFY
from lobe.shared.events.billing import BUDGET_RESERVE
from lobe.shared.events.chat import CHAT_REQUEST
from lobe.shared.events.streams import USAGE
from lobe.shared.events.usage import USAGE_RECORDED

from .conftest import Suite, billing_settings, start_gateway
from .providers import UPSTREAM_MODEL, public_model, routed_worker
from .test_chat_path import MESSAGES
from .transcripts import expected_answer

TRANSCRIPT = "openai/chat_stream_text.sse"
OUTPUT_CAP = 512


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


def ancestors(span: ReadableSpan, found: Sequence[ReadableSpan]) -> list[str]:
    """The names of `span`'s ancestors, nearest first; each must be among `found`."""
    by_id = {s.context.span_id: s for s in found}
    names = []
    while span.parent is not None:
        assert span.parent.span_id in by_id, f"{span.name}'s parent is missing from the trace"
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


async def test_worker_span_is_a_child_of_the_gateway_request_span(
    suite: Suite, spans: InMemorySpanExporter
) -> None:
    await suite.client.chat.completions.create(model="mock", messages=MESSAGES)
    found = await finished(spans, lambda s: {"chat.run", "POST /v1/chat/completions"} <= {x.name for x in s})
    server, run = named(found, "POST /v1/chat/completions"), named(found, "chat.run")
    assert run.context.trace_id == server.context.trace_id
    # The run continues the worker's span for the chat.request message, the gateway's descendant.
    assert ancestors(run, found)[0] == f"process {CHAT_REQUEST}"
    assert ancestors(run, found)[-1] == server.name
    assert named(found, f"process {CHAT_REQUEST}").kind is SpanKind.SERVER
    assert run.attributes is not None
    assert run.attributes["gen_ai.request.model"] == "mock"
    assert (server.attributes or {})["lobe.endpoint"] == run.attributes["lobe.endpoint"] == "chat"
    # The mock is a provider like any other: its call has a span of its own.
    call = named(found, "chat mock")
    assert call.parent is not None
    assert call.parent.span_id == run.context.span_id


async def speak(client: AsyncOpenAI) -> None:
    async with client.audio.speech.with_streaming_response.create(
        model="mock", voice="alloy", input="hi", response_format="wav"
    ) as response:
        await response.read()


CALLS: dict[str, tuple[str, str, Callable[[AsyncOpenAI], Awaitable[Any]]]] = {
    "responses": ("/v1/responses", "chat.run", lambda c: c.responses.create(model="mock", input="hi")),
    "embeddings": (
        "/v1/embeddings",
        "embeddings.run",
        lambda c: c.embeddings.create(model="mock", input="hi"),
    ),
    "images": (
        "/v1/images/generations",
        "images.run",
        lambda c: c.images.generate(model="mock", prompt="hi"),
    ),
    "speech": ("/v1/audio/speech", "speech.run", speak),
    "transcriptions": (
        "/v1/audio/transcriptions",
        "transcription.run",
        lambda c: c.audio.transcriptions.create(model="mock", file=("a.wav", bytes(1000), "audio/wav")),
    ),
}


@pytest.mark.parametrize("endpoint", list(CALLS))
async def test_the_request_span_and_the_run_span_name_the_endpoint(
    builtin_suite: Suite, spans: InMemorySpanExporter, endpoint: str
) -> None:
    path, run_name, call = CALLS[endpoint]
    await call(builtin_suite.client)
    found = await finished(spans, lambda s: {run_name, f"POST {path}"} <= {x.name for x in s})
    server, run = named(found, f"POST {path}"), named(found, run_name)
    assert run.context.trace_id == server.context.trace_id
    assert (server.attributes or {})["lobe.endpoint"] == endpoint
    assert (run.attributes or {})["lobe.endpoint"] == endpoint


async def test_one_requests_trace_holds_the_gateway_billing_the_worker_the_provider_and_the_ledger(
    nats_url: str,
    billing_db: str,
    redis_url: str,
    upstream: FakeUpstream,
    spans: InMemorySpanExporter,
) -> None:
    transcript = load(TRANSCRIPT)
    expected = expected_answer(transcript)
    first_chunk = json.loads(transcript.body.split(b"\n")[0].removeprefix(b"data: "))
    upstream.push(transcript.reply())
    async with (
        BillingService(billing_settings(nats_url, billing_db, "admin")) as billing,
        routed_worker(nats_url, "openai", upstream),
    ):
        assert billing.admin is not None
        await billing.admin.create_user("alice", plan="basic")
        issued = await billing.admin.issue_key("alice")  # verified by billing, over the bus
        runner, base_url = await start_gateway(
            nats_url,
            gateway_api_keys="",
            billing_enabled=True,
            rate_limits_enabled=True,
            redis_url=SecretStr(redis_url),
            redis_tracing=True,
            default_max_output_tokens=OUTPUT_CAP,
        )
        try:
            spans.clear()  # start-up work (migrations, catalog sync) is not the request's
            client = AsyncOpenAI(base_url=f"{base_url}/v1", api_key=issued.key)
            answer = await client.chat.completions.create(model=public_model("openai"), messages=MESSAGES)
            assert answer.choices[0].message.content == expected.text

            def settled(found: Sequence[ReadableSpan]) -> bool:
                names = {span.name for span in found}
                return {"POST /v1/chat/completions", "chat.run", f"process {USAGE_RECORDED}"} <= names

            found = await finished(spans, settled)
        finally:
            await runner.cleanup()

    server = named(found, "POST /v1/chat/completions")
    trace_id = server.context.trace_id
    assert server.kind is SpanKind.SERVER
    assert server.parent is None
    request = [span for span in found if span.context.trace_id == trace_id]
    # Every span of the request's trace descends from the gateway's: no orphan, no second root.
    assert all(ancestors(span, request)[-1:] == [server.name] for span in request if span is not server)
    assert {
        f"process {AUTH_KEY_VERIFY}",  # billing checks the key
        f"process {BUDGET_RESERVE}",  # billing holds the budget
        f"process {CHAT_REQUEST}",  # the worker accepts
        "chat.run",
        f"chat {UPSTREAM_MODEL}",  # the provider call
        f"send {USAGE_RECORDED}",  # the worker's usage fact
        f"process {USAGE_RECORDED}",  # billing settles it: its part of a ledger batch
    } <= {span.name for span in request}
    assert named(request, f"process {BUDGET_RESERVE}").kind is SpanKind.SERVER
    redis = [s for s in request if (s.attributes or {}).get("db.system") == "redis"]
    assert redis, "the rate limiter's Redis commands are not in the trace"
    assert all(s.kind is SpanKind.CLIENT for s in redis)

    run = named(request, "chat.run")
    call = named(request, f"chat {UPSTREAM_MODEL}")
    assert call.parent is not None
    assert call.parent.span_id == run.context.span_id
    assert call.kind is SpanKind.CLIENT
    assert dict(call.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": UPSTREAM_MODEL,
        "gen_ai.request.max_tokens": OUTPUT_CAP,  # the gateway caps what billing holds a budget for
        "gen_ai.response.model": first_chunk["model"],  # the model that answered, as the provider says
        "gen_ai.response.finish_reasons": (expected.finish_reason,),
        "gen_ai.usage.input_tokens": expected.prompt_tokens,
        "gen_ai.usage.output_tokens": expected.completion_tokens,
        "server.address": "127.0.0.1",
    }
    published = named(request, f"send {USAGE_RECORDED}")
    assert published.kind is SpanKind.PRODUCER
    assert "chat.run" in ancestors(published, request)
    settle = named(request, f"process {USAGE_RECORDED}")
    assert settle.parent is not None
    assert settle.parent.span_id == published.context.span_id

    # Billing writes batches of many requests' usage: the batch is a trace of its own, linked to
    # each request it carries; the request's own span links back to it, and the ledger write is
    # the batch's child.
    [batch] = [s for s in found if s.context.span_id in {link.context.span_id for link in settle.links}]
    assert batch.name == f"process {USAGE.name}"
    assert batch.kind is SpanKind.CONSUMER
    assert batch.context.trace_id != trace_id
    linked = {(link.context.trace_id, link.context.span_id) for link in batch.links}
    assert (trace_id, published.context.span_id) in linked
    write = named(found, "ledger write")
    assert write.parent is not None
    assert write.parent.span_id == batch.context.span_id
    assert (write.attributes or {})["lobe.ledger.rows_inserted"] == 1
