"""Issue 3, bounded queues: when every worker is at capacity a request waits up to the gateway's
`saturation_wait_s`, then gets 503 with Retry-After; capacity freed within the wait serves it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import nats
import openai
import pytest
from nats.aio.msg import Msg
from openai import AsyncOpenAI
from prometheus_client import REGISTRY

from lobe.devtools.fake_upstream import FakeUpstream
from lobe.devtools.provider_fixtures import load
from lobe.shared.events.chat import CHAT_REQUEST

from .conftest import API_KEY, start_gateway
from .providers import public_model, routed_worker
from .test_providers_via_sdk import MESSAGES

SATURATION_WAIT_S = 1.0
TRANSCRIPT = "openai/chat_stream_text.sse"
MODEL = public_model("openai")


@pytest.fixture
async def saturating_gateway(nats_url: str) -> AsyncIterator[AsyncOpenAI]:
    runner, base_url = await start_gateway(nats_url, saturation_wait_s=SATURATION_WAIT_S)
    yield AsyncOpenAI(base_url=f"{base_url}/v1", api_key=API_KEY, max_retries=0)
    await runner.cleanup()


def hold_after_first_words(upstream: FakeUpstream) -> None:
    """An answer that stalls after its first words: it holds its worker's slot until the client leaves."""
    body = load(TRANSCRIPT).body
    three_events = [i for i in range(len(body)) if body.startswith(b"\n\n", i)][2] + 2
    upstream.push(load(TRANSCRIPT).reply(split_events=True, hold_after=three_events))


async def first_token(client: AsyncOpenAI) -> openai.AsyncStream[openai.types.chat.ChatCompletionChunk]:
    """Start a streamed answer and return once its first text is here (the worker is busy)."""
    stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            return stream
    raise AssertionError("the answer ended before its first token")


async def test_saturated_worker_gives_503_with_retry_after_once_the_wait_is_over(
    nats_url: str, saturating_gateway: AsyncOpenAI, upstream: FakeUpstream
) -> None:
    hold_after_first_words(upstream)
    async with routed_worker(nats_url, "openai", upstream, worker_max_concurrency=1):
        busy = await first_token(saturating_gateway)
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as caught:
            await saturating_gateway.chat.completions.create(model=MODEL, messages=MESSAGES)
        waited = time.monotonic() - started
        await busy.close()

    assert caught.value.status_code == 503
    assert caught.value.response.headers["Retry-After"] == "1"
    assert caught.value.code == "no_worker_available"
    assert SATURATION_WAIT_S <= waited < SATURATION_WAIT_S + 1.0
    assert len(upstream.requests) == 1  # the refused request never reached the provider


async def test_saturation_gauges_show_a_full_worker_while_its_only_slot_is_held(
    nats_url: str, saturating_gateway: AsyncOpenAI, upstream: FakeUpstream
) -> None:
    hold_after_first_words(upstream)
    async with routed_worker(nats_url, "openai", upstream, worker_max_concurrency=1) as worker:
        assert REGISTRY.get_sample_value("lobe_worker_max_concurrency") == 1
        busy = await first_token(saturating_gateway)
        assert REGISTRY.get_sample_value("lobe_worker_streams_active") == 1
        await busy.close()
        deadline = time.monotonic() + 5
        while worker.runs:  # the client left: the worker cancels the provider call
            assert time.monotonic() < deadline, "the held answer never ended"
            await asyncio.sleep(0.01)
        assert REGISTRY.get_sample_value("lobe_worker_streams_active") == 0


async def test_request_waiting_for_capacity_is_served_when_a_slot_frees_within_the_wait(
    nats_url: str, saturating_gateway: AsyncOpenAI, upstream: FakeUpstream
) -> None:
    transcript = load(TRANSCRIPT)
    answer = transcript.expected["choices"][0]["text"]
    events = transcript.body.count(b"\n\n")
    # The first answer ends ~0.3 s after its first token: well within the wait.
    upstream.push(transcript.reply(split_events=True, chunk_delay_s=0.3 / events))
    upstream.push(transcript.reply(seed=2))
    offers: list[Msg] = []
    nc = await nats.connect(nats_url)

    async def count(msg: Msg) -> None:
        offers.append(msg)

    await nc.subscribe(CHAT_REQUEST, cb=count)
    try:
        async with routed_worker(nats_url, "openai", upstream, worker_max_concurrency=1):
            busy = await first_token(saturating_gateway)
            first_rest = asyncio.create_task(drain(busy))
            started = time.monotonic()
            completion = await saturating_gateway.chat.completions.create(model=MODEL, messages=MESSAGES)
            waited = time.monotonic() - started
            rest = await first_rest
    finally:
        await nc.close()

    assert completion.choices[0].message.content == answer
    assert rest  # the first answer went on after the second request arrived
    assert answer.endswith(rest)
    assert completion.choices[0].finish_reason == "stop"
    assert waited < SATURATION_WAIT_S
    assert len(offers) >= 3  # the first request, then the second refused at least once, then taken


async def drain(stream: openai.AsyncStream[openai.types.chat.ChatCompletionChunk]) -> str:
    text = ""
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    return text
