"""The circuit breaker shared by a fleet of three worker processes (acceptance, issue 12): it
opens after the configured failures, no request reaches the deployment during the cooldown, then
exactly one probe does, however many requests arrive at once; transitions are facts on NATS and
a metric on every worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg

from lobe.devtools.fake_upstream import FakeUpstream, Reply
from lobe.devtools.provider_fixtures import load
from lobe.devtools.suite import upstreams as fake_upstreams
from lobe.devtools.waiting import eventually
from lobe.shared.bus import flush
from lobe.shared.events.routing import BreakerChanged

from .fleet import Fleet, fleet, metric_value, models_file

TEXT = load("openai/chat_stream_text.sse")
FAILURES, COOLDOWN_S = 3, 3.0
BROKEN = Reply(
    b'{"error": {"message": "upstream exploded", "type": "server_error"}}', 500, "application/json"
)


@pytest.fixture
async def failing_and_healthy() -> AsyncIterator[list[FakeUpstream]]:
    async with fake_upstreams(BROKEN, TEXT.reply()) as upstreams:
        yield upstreams


async def all_answered(suite: Fleet, count: int) -> None:
    answered = await suite.deployments("guarded", count, concurrency=count)
    assert sum(answered.values()) == count


async def test_the_breaker_opens_after_n_failures_keeps_traffic_off_and_lets_exactly_one_probe_through(
    nats_url: str, tmp_path: Path, failing_and_healthy: list[FakeUpstream]
) -> None:
    failing, healthy = failing_and_healthy
    models = models_file(
        tmp_path,
        f"""
models:
  - name: guarded
    deployments:
      - name: failing
        provider: openai
        base_url: "{failing.url}/v1"
        breaker: {{failures: {FAILURES}, window_s: 30, cooldown_s: {COOLDOWN_S}}}
      - {{name: healthy, provider: openai, base_url: "{healthy.url}/v1"}}
""",
    )
    facts: list[tuple[str, BreakerChanged]] = []

    async def record(msg: Msg) -> None:
        facts.append((msg.subject, BreakerChanged.decode(msg.data)))

    listener = await nats.connect(nats_url)
    await listener.subscribe("routing.breaker.>", cb=record)
    await flush(listener)
    async with fleet(nats_url, models, tmp_path) as suite:
        # 1. Failures, one request at a time: each falls back to the healthy deployment.
        for _ in range(FAILURES):
            await all_answered(suite, 1)
        assert len(failing.requests) == FAILURES
        await eventually(lambda: len(facts) == 1)
        [(subject, opened)] = facts
        assert (subject, opened.state, opened.failures, opened.reason) == (
            "routing.breaker.opened",
            "open",
            FAILURES,
            "server_error",
        )
        # 2. The cooldown: requests keep coming (to every worker), none reaches the deployment.
        opened_at = opened.occurred_at.timestamp()
        while time.time() < opened_at + COOLDOWN_S - 1.0:
            await all_answered(suite, 6)
        assert len(failing.requests) == FAILURES
        # 3. After it, a burst: exactly one request is the probe; it fails, the breaker reopens.
        await asyncio.sleep(max(opened_at + COOLDOWN_S - time.time(), 0) + 0.05)
        await all_answered(suite, 30)
        probes = failing.requests[FAILURES:]
        print(
            f"breaker: opened after {FAILURES} failures; {len(probes)} request(s) after the "
            f"{COOLDOWN_S}s cooldown, first at +{probes[0].at - opened_at:.3f}s"
        )
        assert len(probes) == 1
        assert not [r for r in failing.requests if opened_at < r.at < opened_at + COOLDOWN_S]
        assert probes[0].at >= opened_at + COOLDOWN_S
        await eventually(lambda: len(facts) == 3)
        assert [(s, f.state, f.previous) for s, f in facts[1:]] == [
            ("routing.breaker.half_opened", "half_open", "open"),
            ("routing.breaker.opened", "open", "half_open"),
        ]
        # Every worker's gauge shows the fleet's state, open (2); each skipped it while open.
        texts = [await w.metrics() for w in suite.workers]
        assert [metric_value(t, "lobe_deployment_breaker_state", deployment="failing") for t in texts] == [
            2.0
        ] * 3
        skipped = [
            metric_value(t, "lobe_routing_skipped_total", deployment="failing", reason="breaker_open")
            for t in texts
        ]
        assert all(n and n > 0 for n in skipped), skipped
        # 4. The deployment recovers: the next probe succeeds and closes the breaker for everyone.
        failing.default = TEXT.reply()
        reopened = facts[-1][1].occurred_at.timestamp()
        await asyncio.sleep(max(reopened + COOLDOWN_S - time.time(), 0) + 0.05)
        await all_answered(suite, 10)
        await eventually(lambda: len(facts) == 5)
        assert [f.state for _, f in facts[3:]] == ["half_open", "closed"]
        answered = await suite.deployments("guarded", 6, concurrency=6)
        assert answered["failing"] == 6  # the first deployment in order serves again
    await listener.close()
