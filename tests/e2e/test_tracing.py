"""One trace across the hop: the worker's span continues the gateway's, via NATS headers."""

from __future__ import annotations

import asyncio

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from .conftest import Suite
from .test_chat_path import MESSAGES

EXPORTER = InMemorySpanExporter()


def install_provider() -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)  # once per process; later calls are ignored with a warning


install_provider()


async def test_worker_span_is_a_child_of_the_gateway_request_span(suite: Suite) -> None:
    EXPORTER.clear()
    await suite.client.chat.completions.create(model="mock", messages=MESSAGES)
    for _ in range(50):  # the worker ends its span just after the last frame
        names = {span.name for span in EXPORTER.get_finished_spans()}
        if {"chat.run", "POST /v1/chat/completions"} <= names:
            break
        await asyncio.sleep(0.02)
    spans = {span.name: span for span in EXPORTER.get_finished_spans()}
    server, run = spans["POST /v1/chat/completions"], spans["chat.run"]
    assert run.context.trace_id == server.context.trace_id
    assert run.parent is not None
    assert run.parent.span_id == server.context.span_id
    assert run.attributes is not None
    assert run.attributes["gen_ai.request.model"] == "mock"
