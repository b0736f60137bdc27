"""Guarantee 6 at the gateway: on SIGTERM readiness goes off first, the listener closes after
SHUTDOWN_DELAY_S, answers in flight finish within the grace, and an answer still streaming past it
ends with an explicit error event, never a silent stop."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import openai
import pytest

from lobe.chat_worker.service import ChatWorker
from lobe.devtools.drain_checks import (
    LONG_MESSAGES,
    http_status,
    long_answer,
    readiness_off_then_listener_closed,
)
from lobe.devtools.ports import free_port
from lobe.devtools.suite import ServiceProcess, start_gateway

from .conftest import API_KEY, GATEWAY_DEFAULTS
from .test_chat_path import MESSAGES
from .test_worker_failures import answer_for

Gateway = tuple[asyncio.subprocess.Process, openai.AsyncOpenAI]
StartGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def gateway_process(nats_url: str, worker: ChatWorker) -> AsyncIterator[StartGateway]:
    started: list[ServiceProcess] = []

    async def start(grace_s: float, delay_s: float = 0.0, ops_port: int = 0) -> Gateway:
        gateway = await start_gateway(
            nats_url,
            mode="process",
            ops_port=ops_port,
            shutdown_grace_s=grace_s,
            shutdown_delay_s=delay_s,
            **GATEWAY_DEFAULTS,
        )
        started.append(gateway)
        return gateway.proc, openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=API_KEY, max_retries=0)

    yield start
    for gateway in started:
        if gateway.running:
            await gateway.kill()


async def stream_and_terminate(gateway: Gateway) -> list[str]:
    proc, client = gateway
    stream = await client.chat.completions.create(model="mock-slow", messages=MESSAGES, stream=True)
    text: list[str] = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text.append(chunk.choices[0].delta.content)
            if len(text) == 1:
                proc.send_signal(signal.SIGTERM)
    return text


async def test_sigterm_lets_a_streaming_answer_finish_within_the_grace(
    gateway_process: StartGateway,
) -> None:
    gateway = await gateway_process(30.0)
    text = await stream_and_terminate(gateway)
    assert "".join(text) == answer_for("mock-slow")
    assert await asyncio.wait_for(gateway[0].wait(), 10) == 0


async def test_an_answer_still_streaming_past_the_grace_ends_with_an_error_event(
    gateway_process: StartGateway,
) -> None:
    gateway = await gateway_process(0.3)
    with pytest.raises(openai.APIError) as caught:
        await stream_and_terminate(gateway)
    assert "shut down" in caught.value.message
    assert await asyncio.wait_for(gateway[0].wait(), 10) == 0


async def test_sigterm_turns_readiness_off_then_refuses_connections_while_the_answer_finishes(
    gateway_process: StartGateway,
) -> None:
    ops_port = free_port()
    proc, client = await gateway_process(30.0, delay_s=1.5, ops_port=ops_port)
    assert client.base_url.port is not None
    stream = await client.chat.completions.create(model="mock-slow", messages=LONG_MESSAGES, stream=True)
    chunks = aiter(stream)
    first = await anext(chunks)
    proc.send_signal(signal.SIGTERM)
    await readiness_off_then_listener_closed(client.base_url.port, delay_s=1.5)
    async with aiohttp.ClientSession() as http:  # the ops listener stays up to say so
        assert await http_status(http, f"http://127.0.0.1:{ops_port}/health/ready") == 503
    rest = [chunk async for chunk in chunks]
    assert "".join(c.choices[0].delta.content or "" for c in [first, *rest] if c.choices) == long_answer(
        "mock-slow"
    )
    assert await asyncio.wait_for(proc.wait(), 10) == 0
