"""The handler wiring, in memory: subjects, streams and decoding as FastStream delivers them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio.to_thread
import pytest
from faststream.nats import NatsBroker, TestNatsBroker

from lobe.metrics.aggregation import UsageMetrics
from lobe.metrics.router import build_router
from lobe.shared.events.billing import BILLING_LIMIT_EXCEEDED, LimitExceeded
from lobe.shared.events.streams import EVENTS, USAGE
from lobe.shared.events.usage import USAGE_RECORDED

from .events import usage_event


def broker_for(metrics: UsageMetrics) -> NatsBroker:
    broker = NatsBroker()
    broker.include_router(build_router(metrics))
    return broker


async def test_usage_recorded_on_the_usage_stream_is_counted() -> None:
    metrics = UsageMetrics()
    async with TestNatsBroker(broker_for(metrics), connect_only=False) as broker:
        await broker.publish(usage_event("a").encode(), USAGE_RECORDED, stream=USAGE.name)
        await broker.publish(usage_event("b", status="error").encode(), USAGE_RECORDED, stream=USAGE.name)
    labels = {"provider": "openai", "model": "gpt-4o-mini"}
    get = metrics.registry.get_sample_value
    assert get("lobe_chat_requests_total", {**labels, "status": "success"}) == 1
    assert get("lobe_chat_requests_total", {**labels, "status": "error"}) == 1
    assert get("lobe_chat_tokens_total", {**labels, "kind": "prompt"}) == 24


async def test_invalid_usage_message_is_counted_and_handler_does_not_fail() -> None:
    metrics = UsageMetrics()
    async with TestNatsBroker(broker_for(metrics), connect_only=False) as broker:
        await broker.publish(b'{"request_id": "x"}', USAGE_RECORDED, stream=USAGE.name)
        await broker.publish(usage_event("ok").encode(), USAGE_RECORDED, stream=USAGE.name)
    assert metrics.registry.get_sample_value("lobe_usage_events_invalid_total") == 1
    assert (
        metrics.registry.get_sample_value(
            "lobe_chat_requests_total", {"provider": "openai", "model": "gpt-4o-mini", "status": "success"}
        )
        == 1
    )


async def test_limit_exceeded_fact_is_counted() -> None:
    metrics = UsageMetrics()
    event = LimitExceeded(request_id="r", user_id="u", limit="requests", period="2026-11", used=5, allowed=5)
    async with TestNatsBroker(broker_for(metrics), connect_only=False) as broker:
        await broker.publish(event.encode(), BILLING_LIMIT_EXCEEDED, stream=EVENTS.name)
        await broker.publish(b"garbage", BILLING_LIMIT_EXCEEDED, stream=EVENTS.name)
    assert metrics.registry.get_sample_value("lobe_billing_limit_exceeded_total", {"limit": "requests"}) == 1


async def test_events_are_handled_on_the_event_loop_without_a_thread_hop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A handler parameter FastStream resolves from its context (a `NatsMessage`) is resolved on a
    # worker thread: one thread hop per usage event, the metrics service's largest cost.
    hops: list[object] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(func: Callable[..., object], *args: Any, **kwargs: Any) -> object:
        hops.append(func)
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    metrics = UsageMetrics()
    async with TestNatsBroker(broker_for(metrics), connect_only=False) as broker:
        for n in range(3):
            await broker.publish(usage_event(f"r{n}").encode(), USAGE_RECORDED, stream=USAGE.name)
    get = metrics.registry.get_sample_value
    assert (
        get("lobe_chat_requests_total", {"provider": "openai", "model": "gpt-4o-mini", "status": "success"})
        == 3
    )
    assert hops == []
