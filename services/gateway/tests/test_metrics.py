"""The gateway's own series through the real app and a scripted worker: open SSE answers, the
latency the gateway adds, and the request histogram by route."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from nats.aio.client import Client as NATS
from prometheus_client import REGISTRY

from .support import HEADERS, ScriptedWorker, accepted, delta, finish, serving

STREAMING = "lobe_streaming_connections_active"


def value(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def chat(stream: bool) -> dict[str, object]:
    return {"model": "mock", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


async def eventually_equal(name: str, expected: float, within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while value(name) != expected:
        assert time.monotonic() < deadline, f"{name} is {value(name)}, never {expected}"
        await asyncio.sleep(0.01)


@pytest.fixture
async def patient_gateway(nats_url: str) -> AsyncIterator[str]:
    # A worker that goes quiet is not presumed dead for the length of a test.
    async with serving(nats_url, worker_silence_s=30) as base_url:
        yield base_url


async def test_an_sse_answer_counts_as_open_from_its_first_byte_until_the_client_leaves(
    patient_gateway: str, worker_nc: NATS
) -> None:
    # One delta, then silence: the answer stays open until the client goes.
    await ScriptedWorker(worker_nc, scripts=[lambda rid: (accepted(rid), [delta(rid, 1, "Hi")])]).start()
    before = value(STREAMING)
    async with aiohttp.ClientSession() as http:
        response = await http.post(f"{patient_gateway}/v1/chat/completions", json=chat(True), headers=HEADERS)
        assert b"Hi" in await response.content.readuntil(b"\n\n")
        assert value(STREAMING) == before + 1
        response.close()  # the client leaves mid-answer
    await eventually_equal(STREAMING, before)


async def test_a_completed_sse_answer_and_a_json_answer_leave_no_open_stream(
    patient_gateway: str, worker_nc: NATS
) -> None:
    complete = [lambda rid: (accepted(rid), [delta(rid, 1, "Hi"), *finish(rid, 2)])] * 2
    await ScriptedWorker(worker_nc, scripts=list(complete)).start()
    before = value(STREAMING)
    async with aiohttp.ClientSession() as http:
        for stream in (True, False):
            async with http.post(
                f"{patient_gateway}/v1/chat/completions", json=chat(stream), headers=HEADERS
            ) as r:
                assert r.status == 200
                await r.read()
    assert value(STREAMING) == before


async def test_added_latency_and_the_request_histogram_are_observed_per_answer(
    patient_gateway: str, worker_nc: NATS
) -> None:
    await ScriptedWorker(worker_nc, scripts=[lambda rid: (accepted(rid), finish(rid, 1))]).start()
    route = {"method": "POST", "route": "/v1/chat/completions", "status_code": "200"}
    overhead_before = value("lobe_gateway_overhead_seconds_count")
    sum_before = value("lobe_gateway_overhead_seconds_sum")
    requests_before = value("lobe_http_request_duration_seconds_count", route)
    started = time.perf_counter()
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{patient_gateway}/v1/chat/completions", json=chat(False), headers=HEADERS) as r,
    ):
        assert r.status == 200
    elapsed = time.perf_counter() - started
    assert value("lobe_gateway_overhead_seconds_count") == overhead_before + 1
    assert value("lobe_http_request_duration_seconds_count", route) == requests_before + 1
    # The gateway's part ends when the worker accepts: inside the request, never beyond it.
    added = value("lobe_gateway_overhead_seconds_sum") - sum_before
    assert 0 < added < elapsed
