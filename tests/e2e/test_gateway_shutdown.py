"""Guarantee 6 at the gateway: on SIGTERM readiness goes off first, the listener closes after
SHUTDOWN_DELAY_S, answers in flight finish within the grace, and an answer still streaming past it
ends with an explicit error event, never a silent stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import openai
import pytest

from lobe.chat_worker.providers.mock import mock_answer
from lobe.devtools.ports import free_port
from lobe.devtools.waiting import eventually
from lobe.shared.chat_schema import ChatCompletionRequest

from .conftest import API_KEY, start_worker, wait_ready
from .test_chat_path import MESSAGES
from .test_worker_failures import answer_for

Gateway = tuple[asyncio.subprocess.Process, openai.AsyncOpenAI]
StartGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def gateway_process(nats_url: str) -> AsyncIterator[StartGateway]:
    started: list[asyncio.subprocess.Process] = []
    worker = await start_worker(nats_url)

    async def start(grace_s: float, delay_s: float = 0.0, ops_port: int = 0) -> Gateway:
        port = free_port()
        env = {
            **os.environ,
            "NATS_URL": nats_url,
            "GATEWAY_PORT": str(port),
            "OPS_PORT": str(ops_port),
            "GATEWAY_API_KEYS": f"{API_KEY}:alice",
            "BILLING_ENABLED": "false",
            "RATE_LIMITS_ENABLED": "false",
            "CACHE_ENABLED": "false",
            "SHUTDOWN_GRACE_S": str(grace_s),
            "SHUTDOWN_DELAY_S": str(delay_s),
            "LOG_FORMAT": "text",
        }
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "lobe.gateway", env=env)
        started.append(proc)
        await wait_ready(port, proc, path="/api/ready")
        return proc, openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=API_KEY, max_retries=0
        )

    yield start
    for proc in started:
        if proc.returncode is None:
            proc.kill()
    await worker.stop()


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


# 40 words at mock-slow's 0.2 s a chunk: an answer still streaming long after the listener closed.
LONG_MESSAGES = [{"role": "user", "content": " ".join(f"word{i}" for i in range(40))}]


async def ready_status(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url) as response:
        return response.status


async def refuses_connections(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


async def test_sigterm_turns_readiness_off_then_refuses_connections_while_the_answer_finishes(
    gateway_process: StartGateway,
) -> None:
    ops_port = free_port()
    proc, client = await gateway_process(30.0, delay_s=1.5, ops_port=ops_port)
    port = client.base_url.port
    assert port is not None
    public_ready = f"http://127.0.0.1:{port}/api/ready"
    ops_ready = f"http://127.0.0.1:{ops_port}/health/ready"
    stream = await client.chat.completions.create(model="mock-slow", messages=LONG_MESSAGES, stream=True)
    chunks = aiter(stream)
    first = await anext(chunks)
    async with aiohttp.ClientSession() as http:
        assert await ready_status(http, public_ready) == 200
        proc.send_signal(signal.SIGTERM)
        # Readiness off while the listener still answers: a refused connection here would fail.
        await eventually(lambda: _is(503, ready_status(http, public_ready)), within_s=1.5, every_s=0.02)
        await eventually(lambda: refuses_connections(port), within_s=10)
        assert await ready_status(http, ops_ready) == 503  # the ops listener stays up to say so
    rest = [chunk async for chunk in chunks]
    text = "".join(c.choices[0].delta.content or "" for c in [first, *rest] if c.choices)
    expected = mock_answer(
        ChatCompletionRequest.model_validate({"model": "mock-slow", "messages": LONG_MESSAGES})
    )
    assert text == "".join(expected)
    assert await asyncio.wait_for(proc.wait(), 10) == 0


async def _is(expected: int, status: Awaitable[int]) -> bool:
    return await status == expected
