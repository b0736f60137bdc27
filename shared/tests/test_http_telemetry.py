"""Every HTTP API's request histogram and server span (lobe.shared.http_telemetry), on a real
aiohttp server: bounded labels whatever the client sends, ops routes left out, the caller's
trace continued."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from lobe.shared.http_telemetry import UNMATCHED_ROUTE, instrument
from lobe.shared.openai_errors import ApiError, openai_errors
from lobe.shared.ops import add_ops_routes

HISTOGRAM = "lobe_http_request_duration_seconds"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


async def item(request: web.Request) -> web.Response:
    if request.match_info["item_id"] == "busy":
        raise ApiError(429, "slow down", "rate_limited")
    if request.match_info["item_id"] == "boom":
        raise RuntimeError("a bug")
    return web.json_response({"id": request.match_info["item_id"]})


async def always_ready() -> bool:
    return True


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = web.Application(middlewares=[openai_errors])
    instrument(app)
    add_ops_routes(app, always_ready)
    app.router.add_get("/v1/items/{item_id}", item)
    async with TestServer(app, host="127.0.0.1") as test_server:
        yield str(test_server.make_url("")).rstrip("/")


def count(method: str, route: str, status: int) -> float:
    labels = {"method": method, "route": route, "status_code": str(status)}
    return REGISTRY.get_sample_value(f"{HISTOGRAM}_count", labels) or 0.0


async def send(base: str, method: str, path: str, headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as http, http.request(method, base + path, headers=headers) as r:
        return r.status


async def test_route_is_the_template_not_the_path(server: str) -> None:
    before = count("GET", "/v1/items/{item_id}", 200)
    assert await send(server, "GET", "/v1/items/1") == 200
    assert await send(server, "GET", "/v1/items/2") == 200
    assert count("GET", "/v1/items/{item_id}", 200) == before + 2


async def test_every_unmatched_path_and_unknown_method_fold_into_one_value_each(server: str) -> None:
    before_404 = count("GET", UNMATCHED_ROUTE, 404)
    before_405 = count("OTHER", UNMATCHED_ROUTE, 405)
    for path in ("/nope/1", "/nope/2", "/../etc/passwd"):
        assert await send(server, "GET", path) == 404
    assert await send(server, "PURGE", "/v1/items/1") == 405
    assert count("GET", UNMATCHED_ROUTE, 404) == before_404 + 3
    assert count("OTHER", UNMATCHED_ROUTE, 405) == before_405 + 1
    routes = {s.labels["route"] for f in REGISTRY.collect() if f.name == HISTOGRAM for s in f.samples}
    assert not any(route.startswith("/nope") for route in routes)


async def test_status_code_is_what_the_client_received(server: str) -> None:
    before_429 = count("GET", "/v1/items/{item_id}", 429)
    before_500 = count("GET", "/v1/items/{item_id}", 500)
    assert await send(server, "GET", "/v1/items/busy") == 429
    assert await send(server, "GET", "/v1/items/boom") == 500
    assert count("GET", "/v1/items/{item_id}", 429) == before_429 + 1
    assert count("GET", "/v1/items/{item_id}", 500) == before_500 + 1


async def test_health_and_metrics_routes_are_not_measured(server: str) -> None:
    for path in ("/health/live", "/health/ready", "/metrics"):
        assert await send(server, "GET", path) == 200
    routes = {s.labels["route"] for f in REGISTRY.collect() if f.name == HISTOGRAM for s in f.samples}
    assert not routes & {"/health/live", "/health/ready", "/metrics"}


async def test_buckets_are_the_seeds(server: str) -> None:
    await send(server, "GET", "/v1/items/1")
    labels = {"method": "GET", "route": "/v1/items/{item_id}", "status_code": "200"}
    bounds = {
        s.labels["le"]
        for f in REGISTRY.collect()
        if f.name == HISTOGRAM
        for s in f.samples
        if s.name.endswith("_bucket") and all(s.labels[k] == v for k, v in labels.items())
    }
    assert bounds == {"0.1", "0.5", "1.0", "2.0", "5.0", "10.0", "+Inf"}


async def test_server_span_continues_the_callers_trace(server: str, spans: InMemorySpanExporter) -> None:
    traceparent = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
    assert await send(server, "GET", "/v1/items/7", {"traceparent": traceparent}) == 200
    assert await send(server, "GET", "/v1/items/boom") == 500
    ok, failed = spans.get_finished_spans()
    assert ok.name == "GET /v1/items/{item_id}"
    assert format(ok.context.trace_id, "032x") == TRACE_ID
    assert ok.attributes is not None
    assert ok.attributes["http.route"] == "/v1/items/{item_id}"
    assert ok.attributes["http.response.status_code"] == 200
    assert ok.status.is_ok
    assert not failed.status.is_ok


async def test_a_public_apis_server_span_only_links_to_the_callers_trace(spans: InMemorySpanExporter) -> None:
    app = web.Application(middlewares=[openai_errors])
    instrument(app, public=True)
    app.router.add_get("/v1/items/{item_id}", item)
    async with TestServer(app, host="127.0.0.1") as test_server:
        base = str(test_server.make_url("")).rstrip("/")
        assert (
            await send(base, "GET", "/v1/items/7", {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"})
            == 200
        )
        assert await send(base, "GET", "/v1/items/8") == 200
    linked, plain = spans.get_finished_spans()
    assert format(linked.context.trace_id, "032x") != TRACE_ID
    assert linked.parent is None
    assert [format(link.context.trace_id, "032x") for link in linked.links] == [TRACE_ID]
    assert not plain.links
