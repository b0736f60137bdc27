"""Which provider answered after how many attempts, as response headers: from the worker's route on
the first delta (an SSE stream sends them with its first byte), the done frame (a JSON answer) or
the error frame. The deployment's name only with EXPOSE_DEPLOYMENT_NAMES (off by default)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from nats.aio.client import Client as NATS

from lobe.shared.events.chat import DeltaFrame, DoneFrame, ErrorFrame, Route

from .support import HEADERS, Script, ScriptedWorker, accepted, finish, serving

ROUTE = Route(deployment="azure-east", provider="azure_openai", model="gpt-4o", attempts=3)
UNNAMED = {"X-Lobe-Provider": "azure_openai", "X-Lobe-Attempts": "3"}
NAMED = {**UNNAMED, "X-Lobe-Deployment": "azure-east"}


@pytest.fixture(params=[False, True], ids=["default", "names-exposed"])
async def route_gateway(
    nats_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """The chat URL of a gateway, and the route headers it sends for ROUTE."""
    expose = request.param
    async with serving(nats_url, expose_deployment_names=expose) as base_url:
        yield f"{base_url}/v1/chat/completions", NAMED if expose else UNNAMED


async def post(url: str, stream: bool) -> tuple[int, dict[str, str]]:
    body = {"model": "mock", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json=body, headers=HEADERS) as response,
    ):
        await response.read()
        return response.status, dict(response.headers)


def routed(rid: str, route_on_done: bool) -> Script:
    first = DeltaFrame(request_id=rid, seq=1, content="Hi", route=None if route_on_done else ROUTE)
    usage, done = finish(rid, 2)
    if route_on_done:
        done = (
            DoneFrame(
                request_id=rid, seq=3, finish_reason="stop", model="m", provider="azure_openai", route=ROUTE
            )
            .model_dump_json()
            .encode()
        )
    return accepted(rid), [first.model_dump_json().encode(), usage, done]


def route_of(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith("X-Lobe-") and k != "X-Lobe-Cost-Usd"}


@pytest.mark.parametrize("stream", [True, False], ids=["sse", "json"])
@pytest.mark.parametrize("route_on_done", [False, True], ids=["first-delta", "done"])
async def test_the_route_becomes_headers_on_either_output(
    route_gateway: tuple[str, dict[str, str]], worker_nc: NATS, stream: bool, route_on_done: bool
) -> None:
    url, route_headers = route_gateway
    await ScriptedWorker(worker_nc, scripts=[lambda rid: routed(rid, route_on_done)]).start()
    status, headers = await post(url, stream)
    assert status == 200
    if stream and route_on_done:
        assert route_of(headers) == {}  # the stream's headers left with its first byte, before the done
    else:
        assert route_of(headers) == route_headers


async def test_an_error_frame_gives_its_route_and_when_to_retry(
    route_gateway: tuple[str, dict[str, str]], worker_nc: NATS
) -> None:
    url, route_headers = route_gateway

    def refused(rid: str) -> Script:
        error = ErrorFrame(
            request_id=rid,
            seq=1,
            status=429,
            code="deployment_rate_limited",
            message="Every deployment of 'mock' is at its rate limit; retry shortly.",
            route=ROUTE,
            retry_after_s=1.2,
        )
        return accepted(rid), [error.model_dump_json().encode()]

    await ScriptedWorker(worker_nc, scripts=[refused]).start()
    status, headers = await post(url, stream=True)
    assert status == 429
    assert route_of(headers) == route_headers
    assert headers["Retry-After"] == "2"  # whole seconds, rounded up


async def test_a_worker_that_sends_no_route_gets_no_route_headers(
    route_gateway: tuple[str, dict[str, str]], worker_nc: NATS
) -> None:
    await ScriptedWorker(
        worker_nc,
        scripts=[
            lambda rid: (
                accepted(rid),
                [DeltaFrame(request_id=rid, seq=1, content="Hi").model_dump_json().encode(), *finish(rid, 2)],
            )
        ],
    ).start()
    status, headers = await post(route_gateway[0], stream=False)
    assert status == 200
    assert route_of(headers) == {}
