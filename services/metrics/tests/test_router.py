"""The consumers' wiring on the in-memory bus: which subjects and streams reach which aggregation,
how undecodable bodies are treated, and the spans the bus gives each batch and event."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lobe.metrics.aggregation import UsageMetrics
from lobe.metrics.router import consume
from lobe.shared.bus import MemoryBus
from lobe.shared.catalog import METRICS
from lobe.shared.events.billing import BILLING_LIMIT_EXCEEDED, LimitExceeded
from lobe.shared.events.streams import METRICS_CONSUMER, USAGE
from lobe.shared.events.usage import USAGE_RECORDED, USAGE_REPORTED

from .events import usage_event


@pytest.fixture
async def bus() -> AsyncIterator[MemoryBus]:
    memory = MemoryBus(METRICS)
    yield memory
    await memory.stop_handlers()


async def counting(bus: MemoryBus) -> UsageMetrics:
    metrics = UsageMetrics()
    await consume(bus, metrics)
    return metrics


async def test_usage_recorded_and_reported_are_counted(bus: MemoryBus) -> None:
    metrics = await counting(bus)
    await bus.publish_fact(USAGE_RECORDED, usage_event("a"))
    await bus.publish_fact(USAGE_RECORDED, usage_event("b", status="error"))
    await bus.publish_fact(USAGE_REPORTED, usage_event("c"))
    await bus.settled()
    labels = {"provider": "openai", "model": "gpt-4o-mini"}
    get = metrics.registry.get_sample_value
    chat = {**labels, "endpoint": "chat"}
    assert get("lobe_chat_requests_total", {**chat, "status": "success"}) == 2
    assert get("lobe_chat_requests_total", {**chat, "status": "error"}) == 1
    assert get("lobe_chat_tokens_total", {**labels, "kind": "prompt"}) == 36


async def test_an_invalid_usage_message_is_counted_and_the_next_one_is_too(bus: MemoryBus) -> None:
    metrics = await counting(bus)
    bus.deliver(USAGE_RECORDED, b'{"request_id": "x"}')
    await bus.publish_fact(USAGE_RECORDED, usage_event("ok"))
    await bus.settled()
    assert metrics.registry.get_sample_value("lobe_usage_events_invalid_total") == 1
    labels = {"provider": "openai", "model": "gpt-4o-mini", "endpoint": "chat", "status": "success"}
    assert metrics.registry.get_sample_value("lobe_chat_requests_total", labels) == 1


async def test_limit_exceeded_fact_is_counted_and_garbage_dropped(bus: MemoryBus) -> None:
    metrics = await counting(bus)
    event = LimitExceeded(request_id="r", user_id="u", limit="requests", period="2026-11", used=5, allowed=5)
    await bus.publish_fact(BILLING_LIMIT_EXCEEDED, event)
    bus.deliver(BILLING_LIMIT_EXCEEDED, b"garbage")
    await bus.settled()
    assert metrics.registry.get_sample_value("lobe_billing_limit_exceeded_total", {"limit": "requests"}) == 1


async def test_each_counted_usage_event_is_a_span_in_its_requests_trace(
    bus: MemoryBus, spans: InMemorySpanExporter
) -> None:
    await counting(bus)
    with trace.get_tracer("test").start_as_current_span("chat.run") as run:
        await bus.publish_fact(USAGE_RECORDED, usage_event("traced"))
    await bus.settled()
    [counted] = [s for s in spans.get_finished_spans() if s.name == f"process {USAGE_RECORDED}"]
    assert counted.context.trace_id == run.get_span_context().trace_id
    [batch] = [s for s in spans.get_finished_spans() if s.name == f"process {USAGE.name}"]
    assert (batch.attributes or {})["messaging.consumer.group.name"] == METRICS_CONSUMER
    assert [link.context.span_id for link in counted.links] == [batch.context.span_id]
