"""The running service against a real nats-server: JetStream in, Prometheus text out."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from lobe.devtools.suite import start_metrics
from lobe.metrics.lag import ConsumerLag
from lobe.metrics.service import running
from lobe.metrics.settings import MetricsSettings
from lobe.shared import bus
from lobe.shared.bus import ensure_streams
from lobe.shared.events.billing import BILLING_LIMIT_EXCEEDED, LimitExceeded
from lobe.shared.events.usage import USAGE_RECORDED

from .events import usage_event

pytestmark = pytest.mark.integration

OK_GPT = {"provider": "openai", "model": "gpt-4o-mini", "endpoint": "chat", "status": "success"}


def settings_for(nats_url: str) -> MetricsSettings:
    return MetricsSettings(nats_url=nats_url, ops_host="127.0.0.1", ops_port=0, log_format="text")


async def scrape(session: aiohttp.ClientSession, base: str, name: str, labels: dict[str, str]) -> float:
    async with session.get(f"{base}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return 0.0


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_usage_published_to_jetstream_shows_on_metrics_once(nats_url: str) -> None:
    async with running(settings_for(nats_url)) as state, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{state.ops_port}"
        async with http.get(f"{base}/health/ready") as resp:
            assert resp.status == 200

        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        first = usage_event("it-1")
        # The same request published twice (a retried publish): the stream's duplicate window
        # keeps one, so the counter must read 1, not 2.
        for _ in range(2):
            await js.publish(USAGE_RECORDED, first.encode(), headers={"Nats-Msg-Id": first.request_id})
        await js.publish(USAGE_RECORDED, usage_event("it-2").encode(), headers={"Nats-Msg-Id": "it-2"})
        await js.publish(USAGE_RECORDED, b"{broken", headers={"Nats-Msg-Id": "it-bad"})
        limit = LimitExceeded(
            request_id="it-3", user_id="u", limit="cost", period="2026-11", used=2, allowed=1
        )
        await js.publish(BILLING_LIMIT_EXCEEDED, limit.encode())
        await nc.drain()

        async def all_counted() -> bool:
            return (
                await scrape(http, base, "lobe_usage_events_invalid_total", {}) == 1
                and await scrape(http, base, "lobe_billing_limit_exceeded_total", {"limit": "cost"}) == 1
                and await scrape(http, base, "lobe_chat_requests_total", OK_GPT) >= 2
            )

        await eventually(all_counted)
        assert await scrape(http, base, "lobe_chat_requests_total", OK_GPT) == 2
        tokens = {"provider": "openai", "model": "gpt-4o-mini", "kind": "completion"}
        assert await scrape(http, base, "lobe_chat_tokens_total", tokens) == 60


async def test_durable_consumer_resumes_after_restart_without_losing_events(nats_url: str) -> None:
    settings = settings_for(nats_url)
    async with running(settings):
        pass  # creates the durable consumer, then stops
    # Published while no metrics process runs: the durable consumer keeps them for the next one.
    nc = await nats.connect(nats_url)
    await nc.jetstream().publish(USAGE_RECORDED, usage_event("while-down").encode())
    await nc.drain()
    async with running(settings) as state:

        async def counted() -> bool:
            return state.metrics.registry.get_sample_value("lobe_chat_requests_total", OK_GPT) == 1

        await eventually(counted)


async def test_readiness_is_503_while_draining(nats_url: str) -> None:
    async with running(settings_for(nats_url)) as state:
        assert await state.ready() is True
        assert state.runtime is not None
        state.runtime.draining.set()  # what SIGTERM does first
        url = f"http://127.0.0.1:{state.ops_port}/health/ready"
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            assert resp.status == 503


async def test_process_exits_cleanly_on_sigterm(nats_url: str, tmp_path: Path) -> None:
    log = tmp_path / "metrics.log"
    metrics = await start_metrics(nats_url, mode="process", log=log, log_format="json")
    try:

        async def consuming() -> bool:
            return b"metrics consuming" in log.read_bytes()

        await eventually(consuming, 15)
        metrics.proc.send_signal(signal.SIGTERM)
        assert await metrics.wait(10) == 0
        rest = log.read_bytes()
        assert b"draining" in rest
        assert b"Traceback" not in rest
    finally:
        await metrics.stop()


async def test_consumer_lag_reports_pending_and_unacknowledged_usage_per_durable_consumer(
    nats_url: str,
) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_streams(js, replicas=1)
    lag = ConsumerLag(CollectorRegistry())
    await lag.poll(js)
    billing = {"stream": "USAGE", "consumer": "billing"}
    assert lag.pending.collect()[0].samples == []  # no consumer yet, so no series

    await js.add_consumer(
        "USAGE",
        ConsumerConfig(durable_name="billing", filter_subject=USAGE_RECORDED, ack_policy=AckPolicy.EXPLICIT),
    )
    for i in range(3):
        await js.publish(USAGE_RECORDED, usage_event(f"lag-{i}").encode())
    sub = await js.pull_subscribe(USAGE_RECORDED, durable="billing", stream="USAGE")
    fetched = await sub.fetch(2, timeout=5)
    assert len(fetched) == 2  # delivered, not acked
    await lag.poll(js)
    assert lag.pending.labels(**billing)._value.get() == 1
    assert lag.ack_pending.labels(**billing)._value.get() == 2
    for msg in fetched:
        await msg.ack()
    await bus.flush(nc)
    await lag.poll(js)
    assert lag.ack_pending.labels(**billing)._value.get() == 0
    await nc.drain()
