"""Routing strategies across a fleet of three worker processes (acceptance, issue 12).

The deployment that answered each request is read off the `X-Lobe-Deployment` response header,
so these also show that routing is visible to the client.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lobe.billing.service import BillingService
from lobe.chat_worker.deployments import Deployment, ModelCatalog, RoutedModel
from lobe.chat_worker.policies import Limits
from lobe.chat_worker.routing.strategies import Demand
from lobe.devtools.fake_upstream import FakeUpstream
from lobe.devtools.provider_fixtures import load
from lobe.devtools.suite import upstreams as fake_upstreams
from lobe.devtools.waiting import eventually

from .conftest import Suite, billing_settings, start_worker
from .fleet import Gateway, fleet, models_file

TEXT = load("openai/chat_stream_text.sse")
FAST_S, SLOW_S = 0.02, 0.2


async def test_weights_3_to_1_split_2000_requests_within_5_percent(nats_url: str, tmp_path: Path) -> None:
    models = models_file(
        tmp_path,
        """
models:
  - name: split
    strategy: weighted
    deployments:
      - {name: heavy, provider: mock, weight: 3}
      - {name: light, provider: mock, weight: 1}
      - {name: standby, provider: mock, weight: 0}
""",
    )
    async with fleet(nats_url, models, tmp_path) as suite:
        answered = await suite.deployments("split", 2000, concurrency=32)
    share = answered["heavy"] / 2000
    print(f"weighted 3:1 over 2000 requests: {dict(answered)} -> heavy {share:.1%}")
    assert answered["heavy"] + answered["light"] == 2000  # a weight-0 standby gets no first pick
    assert abs(share - 0.75) <= 0.05


@pytest.fixture
async def fast_and_slow() -> AsyncIterator[list[FakeUpstream]]:
    async with fake_upstreams(
        TEXT.reply(first_byte_delay_s=FAST_S), TEXT.reply(first_byte_delay_s=SLOW_S)
    ) as started:
        yield started


async def test_lowest_latency_sends_at_least_80_percent_to_the_faster_deployment(
    nats_url: str, tmp_path: Path, fast_and_slow: list[FakeUpstream]
) -> None:
    fast, slow = fast_and_slow
    models = models_file(
        tmp_path,
        f"""
models:
  - name: quick
    strategy: lowest_latency
    explore: 0.1
    deployments:
      - {{name: slow, provider: openai, base_url: "{slow.url}/v1"}}
      - {{name: fast, provider: openai, base_url: "{fast.url}/v1"}}
""",
    )
    async with fleet(nats_url, models, tmp_path) as suite:
        answered = await suite.deployments("quick", 200, concurrency=4)
    share = answered["fast"] / 200
    print(f"lowest_latency over 200 requests: {dict(answered)} -> fast {share:.1%}")
    assert share >= 0.8
    assert (len(fast.requests), len(slow.requests)) == (answered["fast"], answered["slow"])


async def test_least_in_flight_spreads_requests_by_what_the_whole_fleet_has_in_flight(
    nats_url: str, tmp_path: Path
) -> None:
    # Both deployments hold every answer for seconds: each new request (on any of the three
    # workers) must see the ones the other workers have in flight and pick the emptier deployment.
    slow = TEXT.reply(first_byte_delay_s=5.0)
    async with fake_upstreams(slow, slow) as (a, b):
        models = models_file(
            tmp_path,
            f"""
models:
  - name: spread
    strategy: least_in_flight
    deployments:
      - {{name: a, provider: openai, base_url: "{a.url}/v1"}}
      - {{name: b, provider: openai, base_url: "{b.url}/v1"}}
""",
        )
        async with fleet(nats_url, models, tmp_path) as suite:
            pending = []
            for _ in range(6):
                pending.append(asyncio.create_task(suite.chat("spread")))
                await asyncio.sleep(0.5)  # far longer than a worker takes to publish its in-flight count
            results = await asyncio.gather(*pending)
    assert [status for status, _, _ in results] == [200] * 6
    assert Counter(headers["X-Lobe-Deployment"] for _, headers, _ in results) == {"a": 3, "b": 3}


async def test_headroom_prefers_the_deployment_with_the_larger_share_of_its_window_left(
    gateway_only: Suite,
) -> None:
    catalog = ModelCatalog(
        models=[
            RoutedModel(
                name="roomy",
                strategy="headroom",
                deployments=[
                    Deployment(name="small", provider="mock", limits=Limits(rpm=10)),
                    Deployment(name="large", provider="mock", limits=Limits(rpm=30)),
                ],
            )
        ]
    )
    worker = await start_worker(gateway_only.nats_url, models=catalog)
    try:
        answered = await Gateway(gateway_only.http, gateway_only.base_url).deployments(
            "roomy", 20, concurrency=1
        )
    finally:
        await worker.stop()
    # Both keep the same share left: 20 requests split 1:3 like the limits (one off by the first pick).
    assert abs(answered["small"] - 5) <= 1, answered


async def test_lowest_cost_routes_to_the_deployment_billing_prices_lowest(
    nats_url: str, billing_db: str, gateway_only: Suite
) -> None:
    catalog = ModelCatalog(
        models=[
            RoutedModel(
                name="thrifty",
                strategy="lowest_cost",
                deployments=[
                    Deployment(name="dear", provider="mock", model="gpt-4o"),  # $2.50 / $10 per million
                    Deployment(name="cheap", provider="mock", model="gpt-4o-mini"),  # $0.15 / $0.60
                    Deployment(name="unknown", provider="mock", model="no-price-yet"),  # billing's default
                ],
            )
        ]
    )
    async with BillingService(billing_settings(nats_url, billing_db, "cost-admin")):
        worker = await start_worker(nats_url, models=catalog)
        try:
            await eventually(lambda: len(worker.router.prices.rates) == 3)
            answered = await Gateway(gateway_only.http, gateway_only.base_url).deployments("thrifty", 5)
            ranked = [d.name for d in worker.router.rank(catalog.models[0], Demand(1000, 100))]
        finally:
            await worker.stop()
    assert answered == {"cheap": 5}
    assert ranked == ["cheap", "dear", "unknown"]
