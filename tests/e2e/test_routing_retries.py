"""Retries of the same deployment (acceptance, issue 12): they honour the provider's Retry-After,
back off exponentially with jitter otherwise, stay within the request's deadline, and happen only
before the first token. The client sees how many attempts it took."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest

from lobe.chat_worker.deployments import Deployment, ModelCatalog, RoutedModel
from lobe.chat_worker.policies import RetryPolicy
from lobe.devtools.fake_upstream import FakeUpstream, Reply
from lobe.devtools.provider_fixtures import load
from lobe.devtools.suite import upstreams as fake_upstreams

from .conftest import API_KEY, Suite, start_gateway, start_worker
from .test_chat_path import usage_events

TEXT = load("openai/chat_stream_text.sse")
RATE_LIMITED = load("openai_compatible/openrouter_error_429.json")
ANSWER = TEXT.expected["choices"][0]["text"]
CHAT = {"model": "routed", "messages": [{"role": "user", "content": "Retry me."}]}


def rate_limited(**headers: str) -> Reply:
    return Reply(RATE_LIMITED.body, status=429, content_type="application/json", headers=headers)


def unavailable() -> Reply:
    return Reply(b'{"error": {"message": "overloaded", "type": "server_error"}}', 503, "application/json")


@pytest.fixture
async def answering_upstreams() -> AsyncIterator[list[FakeUpstream]]:
    async with fake_upstreams(TEXT.reply(), TEXT.reply()) as started:
        yield started


async def routed(suite: Suite, answering_upstreams: list[FakeUpstream], retry: RetryPolicy) -> Any:
    deployments = [
        Deployment(name=name, provider="openai", base_url=f"{upstream.url}/v1", model="m")
        for name, upstream in zip(("primary", "secondary"), answering_upstreams, strict=False)
    ]
    catalog = ModelCatalog(models=[RoutedModel(name="routed", deployments=deployments, retry=retry)])
    return await start_worker(suite.nats_url, models=catalog)


async def post(suite: Suite, **body: Any) -> tuple[int, dict[str, str], str]:
    async with suite.http.post(
        f"{suite.base_url}/v1/chat/completions", json={**CHAT, **body}, headers=suite.headers()
    ) as response:
        return response.status, dict(response.headers), await response.text()


def gaps(upstream: FakeUpstream) -> list[float]:
    times = [r.at for r in upstream.requests]
    return [b - a for a, b in itertools.pairwise(times)]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_a_429_with_retry_after_1_is_retried_once_after_a_second_and_the_header_says_2_attempts(
    gateway_only: Suite, answering_upstreams: list[FakeUpstream], stream: bool
) -> None:
    primary, _ = answering_upstreams
    primary.push(rate_limited(**{"Retry-After": "1"}))
    worker = await routed(gateway_only, [primary], RetryPolicy(max_retries=2))
    try:
        status, headers, text = await post(gateway_only, stream=stream)
    finally:
        await worker.stop()
    assert status == 200, text
    assert ANSWER.split()[0] in text  # a normal answer (streamed or whole)
    assert (headers["X-Lobe-Deployment"], headers["X-Lobe-Provider"], headers["X-Lobe-Attempts"]) == (
        "primary",
        "openai",
        "2",
    )
    [gap] = gaps(primary)
    print(f"Retry-After: 1 -> retried after {gap:.3f}s")
    # Never early; at most 10 % jitter (plus a loaded machine's slack).
    assert gap >= 1.0, gap
    assert gap < 1.1 + 0.5, gap
    [event] = await usage_events(gateway_only, expect=1)
    assert (event.deployment, event.status, event.attempts) == ("primary", "ok", 2)


async def test_a_retry_after_given_as_an_http_date_is_honoured(
    gateway_only: Suite, answering_upstreams: list[FakeUpstream]
) -> None:
    primary, _ = answering_upstreams
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    primary.push(rate_limited(**{"Retry-After": format_datetime(when, usegmt=True)}))
    worker = await routed(gateway_only, [primary], RetryPolicy(max_retries=1))
    try:
        status, headers, _ = await post(gateway_only)
    finally:
        await worker.stop()
    assert (status, headers["X-Lobe-Attempts"]) == (200, "2")
    assert primary.requests[1].at >= when.timestamp()


async def test_without_retry_after_retries_back_off_exponentially_with_jitter(
    gateway_only: Suite, answering_upstreams: list[FakeUpstream]
) -> None:
    primary, _ = answering_upstreams
    primary.push(unavailable())
    primary.push(unavailable())
    worker = await routed(gateway_only, [primary], RetryPolicy(max_retries=2, backoff_base_s=0.2))
    try:
        status, headers, _ = await post(gateway_only)
    finally:
        await worker.stop()
    assert (status, headers["X-Lobe-Attempts"]) == (200, "3")
    first, second = gaps(primary)
    print(f"backoff 0.2 s base: waited {first:.3f}s then {second:.3f}s")
    assert 0.1 <= first < 0.2 + 0.3  # half to all of 0.2 s
    assert 0.2 <= second < 0.4 + 0.3  # half to all of 0.4 s


async def test_a_retry_after_past_the_deadline_is_not_waited_for(
    nats_url: str, answering_upstreams: list[FakeUpstream]
) -> None:
    primary, _ = answering_upstreams
    primary.push(rate_limited(**{"Retry-After": "5"}))
    runner, base_url = await start_gateway(nats_url, request_timeout_s=3.0)
    catalog = ModelCatalog(
        models=[
            RoutedModel(
                name="routed",
                deployments=[Deployment(name="primary", provider="openai", base_url=f"{primary.url}/v1")],
                retry=RetryPolicy(max_retries=3),
            )
        ]
    )
    worker = await start_worker(nats_url, models=catalog)
    began = time.monotonic()
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{base_url}/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {API_KEY}"}
            ) as response,
        ):
            status, headers, body = response.status, dict(response.headers), await response.json()
    finally:
        await worker.stop()
        await runner.cleanup()
    assert time.monotonic() - began < 2.0  # answered at once, not after 5 s (nor at the 3 s deadline)
    assert (status, body["error"]["code"]) == (429, "rate_limit_exceeded")
    assert headers["Retry-After"] == "5"  # what the provider said, passed on
    assert (headers["X-Lobe-Deployment"], headers["X-Lobe-Attempts"]) == ("primary", "1")
    assert len(primary.requests) == 1


async def test_a_retry_after_longer_than_max_wait_moves_on_to_the_next_deployment_at_once(
    gateway_only: Suite, answering_upstreams: list[FakeUpstream]
) -> None:
    primary, secondary = answering_upstreams
    primary.push(rate_limited(**{"Retry-After": "30"}))
    worker = await routed(gateway_only, answering_upstreams, RetryPolicy(max_retries=3, max_wait_s=10))
    began = time.monotonic()
    try:
        status, headers, _ = await post(gateway_only)
    finally:
        await worker.stop()
    assert time.monotonic() - began < 2.0
    assert (status, headers["X-Lobe-Deployment"], headers["X-Lobe-Attempts"]) == (200, "secondary", "2")
    assert (len(primary.requests), len(secondary.requests)) == (1, 1)


async def test_an_answer_cut_after_its_first_token_is_not_retried(
    gateway_only: Suite, answering_upstreams: list[FakeUpstream]
) -> None:
    primary, secondary = answering_upstreams
    primary.push(TEXT.reply(cut_after=len(TEXT.body) // 2))
    worker = await routed(gateway_only, answering_upstreams, RetryPolicy(max_retries=3, backoff_base_s=0.05))
    try:
        status, _, text = await post(gateway_only, stream=True)
    finally:
        await worker.stop()
    assert status == 200  # the stream had started: the failure is an error event in it
    assert '"error"' in text
    assert "[DONE]" not in text
    assert (len(primary.requests), len(secondary.requests)) == (1, 0)
    [event] = await usage_events(gateway_only, expect=1)
    assert (event.status, event.attempts) == ("error", 1)
