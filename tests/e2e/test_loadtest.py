"""`lobe loadtest` against an in-process suite: the report's numbers agree with what was sent.

Real NATS, the real worker and gateway in this process, the load test's own fast upstream as the
provider. Small counts: this checks the instrument, `make bench` measures with it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from lobe.chat_worker.deployments import Deployment, ModelCatalog, RoutedModel
from lobe.devtools.loadtest.bus_client import BusTarget, connect_as_gateway
from lobe.devtools.loadtest.http_client import HttpTarget, client_session, request_body
from lobe.devtools.loadtest.load import Level, Target
from lobe.devtools.loadtest.measure import Plan, measure
from lobe.devtools.loadtest.processes import ProcessWatch
from lobe.devtools.loadtest.shape import MODEL, Shape
from lobe.devtools.loadtest.upstream import FastUpstream
from lobe.shared.events.chat import Caller

from .conftest import API_KEY, start_gateway, start_worker

SHAPE = Shape(chunks=5)


@pytest.fixture
async def suite_url(nats_url: str) -> AsyncIterator[str]:
    upstream = await FastUpstream(SHAPE).start()
    deployment = Deployment(name="fast", provider="openai_compatible", base_url=upstream.url)
    worker = await start_worker(
        nats_url, ModelCatalog(models=[RoutedModel(name=MODEL, deployments=[deployment])])
    )
    runner, base_url = await start_gateway(nats_url)
    yield f"{base_url}/v1"
    await runner.cleanup()
    await worker.stop()
    await upstream.stop()


def assert_consistent(report: dict[str, Any], counts: list[int]) -> None:
    assert report["errors"] == 0, [level["error_examples"] for level in report["levels"]]
    assert [level["requests"] for level in report["levels"]] == counts
    for level in report["levels"]:
        assert level["ok"] == level["requests"]
        assert level["throughput_rps"] == pytest.approx(level["ok"] / level["wall_s"])
        for metric in ("ttft_ms", "total_ms"):
            d = level[metric]
            assert 0 < d["min"] <= d["p50"] <= d["p90"] <= d["p99"] <= d["p99.9"] <= d["max"]
        assert level["ttft_ms"]["p50"] <= level["total_ms"]["p50"]
        assert sum(row["completed"] for row in level["timeline"]) == level["requests"]
        assert level["cpu"]["client"]["processes"] == 1
        assert level["cpu"]["client"]["cpu_s"] > 0
    assert any(row["kind"] == "client" and row["rss_end_mb"] > 0 for row in report["memory"])
    assert len(report["loadavg_before"]) == len(report["loadavg_after"]) == 3


async def test_loadtest_over_http_closed_and_open_loop_reports_every_answer_valid(suite_url: str) -> None:
    async with client_session(30) as http:
        target = HttpTarget(http, [suite_url], API_KEY, SHAPE, model=MODEL)
        levels = [
            Level("closed", 1, requests=5),
            Level("closed", 4, requests=12),
            Level("open", 50, requests=10),
        ]
        report = await measure(target, Plan("http", levels, warmup=2, progress=False), ProcessWatch([]))
    assert_consistent(report, [5, 12, 10])
    assert [level["mode"] for level in report["levels"]] == ["closed", "closed", "open"]


async def test_loadtest_on_the_bus_follows_the_chat_protocol_to_the_done_frame(
    suite_url: str, nats_url: str
) -> None:
    nc = await connect_as_gateway(nats_url)
    try:
        target: Target = BusTarget(nc, SHAPE, model=MODEL, caller=Caller(user_id="load", plan="enterprise"))
        report = await measure(
            target,
            Plan("bus", [Level("closed", 3, requests=9)], warmup=0, progress=False),
            ProcessWatch([os.getpid()]),
        )
    finally:
        await nc.close()
    assert_consistent(report, [9])


async def test_an_answer_that_differs_from_the_shape_is_counted_as_an_error(suite_url: str) -> None:
    async with client_session(30) as http:
        expecting_more = HttpTarget(http, [suite_url], API_KEY, Shape(chunks=6), model=MODEL)
        report = await measure(
            expecting_more,
            Plan("wrong", [Level("closed", 2, requests=4)], warmup=0, progress=False),
            ProcessWatch([]),
        )
    (level,) = report["levels"]
    assert (level["ok"], level["errors"], level["throughput_rps"]) == (0, 4, 0)
    assert level["error_kinds"] == {"content": 4}
    assert report["errors"] == 4


async def test_a_refused_request_is_an_error_of_its_http_status(suite_url: str) -> None:
    async with client_session(30) as http:
        wrong_key = HttpTarget(http, [suite_url], "sk-wrong", SHAPE, model=MODEL)
        plan = Plan("refused", [Level("open", 100, requests=3)], warmup=0, progress=False)
        report = await measure(wrong_key, plan, ProcessWatch([]))
    assert report["levels"][0]["error_kinds"] == {"http 401": 3}


async def test_cache_miss_mode_asks_the_response_cache_and_always_reaches_the_upstream(
    nats_url: str, redis_url: str
) -> None:
    upstream = await FastUpstream(SHAPE).start()
    deployment = Deployment(name="fast", provider="openai_compatible", base_url=upstream.url)
    worker = await start_worker(
        nats_url, ModelCatalog(models=[RoutedModel(name=MODEL, deployments=[deployment])])
    )
    runner, base_url = await start_gateway(nats_url, cache_enabled=True, redis_url=redis_url)
    try:
        async with client_session(30) as http:
            target = HttpTarget(http, [f"{base_url}/v1"], API_KEY, SHAPE, model=MODEL, cache_miss=True)
            plan = Plan("miss", [Level("closed", 2, requests=6)], warmup=0, progress=False)
            report = await measure(target, plan, ProcessWatch([]))
            headers = {**target.headers, "Authorization": f"Bearer {API_KEY}"}
            body = request_body(MODEL, True, "one-nonce")
            async with http.post(f"{base_url}/v1/chat/completions", data=body, headers=headers) as response:
                await response.read()
                looked_up = response.headers.get("X-Cache")
    finally:
        await runner.cleanup()
        await worker.stop()
        await upstream.stop()
    assert report["levels"][0]["ok"] == 6
    assert upstream.counters.requests == 6 + 1  # every request reached the upstream: no hit
    assert looked_up == "miss"  # the header makes a request cacheable: the cache was asked
