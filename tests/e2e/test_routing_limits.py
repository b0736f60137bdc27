"""Per-deployment limits across a fleet of three worker processes (acceptance, issue 12): the
fleet admits exactly the limit per window, and a deployment at its limit is skipped, not errored."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from lobe.chat_worker.deployments import Deployment, ModelCatalog, RoutedModel
from lobe.chat_worker.policies import Limits
from lobe.chat_worker.routing.store import BUCKET, COUNTER_STREAM, counter_subject
from lobe.devtools.fake_upstream import FakeUpstream
from lobe.devtools.provider_fixtures import load
from lobe.devtools.suite import upstreams as fake_upstreams
from lobe.devtools.waiting import eventually

from .conftest import Suite, start_worker
from .fleet import Gateway, fleet, models_file

TEXT = load("openai/chat_stream_text.sse")
WINDOW_S = 2.0
RPM = 300  # 10 per 2 s window
PER_WINDOW = 10
BURST = 25
WINDOWS = 3


@pytest.fixture
async def capped_and_overflow() -> AsyncIterator[list[FakeUpstream]]:
    async with fake_upstreams(TEXT.reply(), TEXT.reply()) as upstreams:
        yield upstreams


async def into_next_window(offset_s: float) -> int:
    """Sleep until `offset_s` into the next window; its number."""
    now = time.time()
    window = math.floor(now / WINDOW_S) + 1
    await asyncio.sleep(window * WINDOW_S + offset_s - now)
    return window


async def fleet_count(nats_url: str, subject: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        msg = await nc.jetstream().get_last_msg(COUNTER_STREAM, subject)
        return int(json.loads(msg.data or b"{}")["val"])
    finally:
        await nc.close()


async def test_an_rpm_limit_holds_across_three_workers_within_one_per_window(
    nats_url: str, tmp_path: Path, capped_and_overflow: list[FakeUpstream]
) -> None:
    capped, overflow = capped_and_overflow
    models = models_file(
        tmp_path,
        f"""
models:
  - name: limited
    deployments:
      - {{name: capped, provider: openai, base_url: "{capped.url}/v1", limits: {{rpm: {RPM}, window_s: {WINDOW_S}}}}}
      - {{name: overflow, provider: openai, base_url: "{overflow.url}/v1"}}
""",
    )
    windows = []
    async with fleet(nats_url, models, tmp_path) as suite:
        for _ in range(WINDOWS):
            windows.append(await into_next_window(0.3))
            answered = await suite.deployments("limited", BURST, concurrency=BURST)
            # Skipped, not errored: every request of the burst is answered, the rest by overflow.
            assert answered == Counter({"capped": PER_WINDOW, "overflow": BURST - PER_WINDOW}), answered
        await asyncio.sleep(0.2)  # the refused increments' give-backs
        counted = [await fleet_count(nats_url, counter_subject(f"capped.{w}.requests")) for w in windows]
    arrived = Counter(math.floor(r.at / WINDOW_S) for r in capped.requests)
    per_window = [arrived[w] for w in windows]
    print(f"rpm {RPM} ({PER_WINDOW}/window) across 3 workers, {BURST} per window: upstream got {per_window}")
    assert all(abs(n - PER_WINDOW) <= 1 for n in per_window)
    assert counted == [PER_WINDOW] * WINDOWS  # the fleet's own count: exact
    assert len(overflow.requests) == WINDOWS * (BURST - PER_WINDOW)


async def test_requests_are_served_on_local_state_while_the_routing_store_is_gone(
    gateway_only: Suite,
) -> None:
    catalog = ModelCatalog(
        models=[
            RoutedModel(
                name="limited",
                deployments=[Deployment(name="capped", provider="mock", limits=Limits(rpm=600, tpm=100_000))],
            )
        ]
    )
    worker = await start_worker(gateway_only.nats_url, models=catalog)
    registry = worker.metrics.registry
    try:
        js = gateway_only.nc.jetstream()
        await js.delete_stream(f"KV_{BUCKET}")
        await js.delete_stream(COUNTER_STREAM)
        gateway, degraded_seen = Gateway(gateway_only.http, gateway_only.base_url), False
        for _ in range(10):
            assert await gateway.deployments("limited", 1) == {"capped": 1}
            degraded_seen = degraded_seen or registry.get_sample_value("lobe_routing_store_degraded") == 1
        assert degraded_seen
        await eventually(lambda: registry.get_sample_value("lobe_routing_store_degraded") == 0)
        assert await js.stream_info(COUNTER_STREAM)  # re-created by the worker
    finally:
        await worker.stop()
