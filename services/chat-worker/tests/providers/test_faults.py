"""Faults every adapter must turn into an explicit ProviderError (never a hang, never a clean
finish): error statuses, a slow first byte, silence mid-stream, a cut connection, a malformed
chunk, and cancellation reaching the provider's connection."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
import pytest

from lobe.chat_worker.providers.registry import build_provider
from lobe.devtools.fake_upstream import FakeUpstream, Reply
from lobe.devtools.provider_fixtures import load

from .support import collect, deployment, request

# (provider kind, a successful streaming transcript of it, a malformed chunk in its framing)
ADAPTERS: list[tuple[str, str, bytes]] = [
    ("openai", "openai/chat_stream_text.sse", b'data: {"choices": [{"delta": {"content": "x"}}\n\n'),
    ("anthropic", "anthropic/messages_stream_text.sse", b'event: ping\ndata: {"type": "ping"\n\n'),
    ("gemini", "gemini/stream_text_thoughts_usage.sse", b'data: {"candidates": [{"content": \r\n\r\n'),
    ("ollama", "ollama/api_generate_stream.ndjson", b'{"model":"m","response":"x",\n'),
]
KINDS = [pytest.param(*a, id=a[0]) for a in ADAPTERS]


def make(kind: str, url: str, session: aiohttp.ClientSession, **timeouts: float) -> Any:
    return build_provider(deployment(kind, url, timeouts=timeouts), session)


@pytest.mark.parametrize(("kind", "name", "malformed"), KINDS)
async def test_slow_first_byte_times_out_within_first_byte_budget_and_is_retryable(
    kind: str, name: str, malformed: bytes, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.push(Reply(load(name).body, first_byte_delay_s=5))
    loop = asyncio.get_running_loop()
    began = loop.time()
    got = await collect(make(kind, upstream.url, session, first_byte_s=0.2), request())
    elapsed = loop.time() - began
    assert got.error is not None
    assert (got.error.status, got.error.code) == (504, "upstream_timeout")
    assert (got.error.retryable, got.error.started) == (True, False)
    assert 0.2 <= elapsed < 0.4
    assert got.finished is None


@pytest.mark.parametrize(("kind", "name", "malformed"), KINDS)
async def test_silence_mid_stream_times_out_after_idle_budget_as_started_not_retryable(
    kind: str, name: str, malformed: bytes, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    body = load(name).body
    upstream.push(Reply(body, hold_after=len(body) * 2 // 3))
    got = await collect(make(kind, upstream.url, session, idle_s=0.2), request())
    assert got.text or got.reasoning or got.calls
    assert got.error is not None
    assert (got.error.status, got.error.code, got.error.retryable, got.error.started) == (
        504,
        "upstream_timeout",
        False,
        True,
    )
    assert "silent" in got.error.message
    assert got.finished is None


@pytest.mark.parametrize(("kind", "name", "malformed"), KINDS)
async def test_total_budget_ends_a_dripping_stream(
    kind: str, name: str, malformed: bytes, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    body = load(name).body
    upstream.push(Reply(body, hold_after=len(body) - 3))
    got = await collect(make(kind, upstream.url, session, idle_s=5, total_s=0.3), request())
    assert got.error is not None
    assert got.error.code == "upstream_timeout"
    assert "longer than 0.3s" in got.error.message


@pytest.mark.parametrize(("kind", "name", "malformed"), KINDS)
@pytest.mark.parametrize("fraction", [0.5, 0.97])
async def test_disconnect_mid_stream_is_an_error_after_output_never_a_clean_finish(
    kind: str,
    name: str,
    malformed: bytes,
    fraction: float,
    upstream: FakeUpstream,
    session: aiohttp.ClientSession,
) -> None:
    body = load(name).body
    upstream.push(Reply(body, cut_after=int(len(body) * fraction)))
    got = await collect(make(kind, upstream.url, session), request())
    assert got.error is not None
    assert got.error.started is True
    assert got.error.status == 502
    assert got.finished is None


@pytest.mark.parametrize(("kind", "name", "malformed"), KINDS)
async def test_body_ending_cleanly_before_the_finish_is_truncation_not_success(
    kind: str, name: str, malformed: bytes, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    body = load(name).body
    upstream.push(Reply(body[: len(body) // 2], content_type=load(name).reply().content_type))
    got = await collect(make(kind, upstream.url, session), request())
    assert got.error is not None
    assert got.error.status == 502
    assert got.finished is None


@pytest.mark.parametrize(("kind", "name", "malformed"), KINDS)
async def test_malformed_chunk_is_an_error_naming_the_chunk(
    kind: str, name: str, malformed: bytes, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.push(Reply(malformed, content_type=load(name).reply().content_type))
    got = await collect(make(kind, upstream.url, session), request())
    assert got.error is not None
    assert (got.error.status, got.error.code) == (502, "upstream_malformed")
    assert malformed.decode().split("data: ")[-1].strip() in got.error.message


@pytest.mark.parametrize(("kind", "name", "malformed"), KINDS)
@pytest.mark.parametrize(
    ("status", "client_status", "code", "retryable"),
    [
        (401, 502, "upstream_auth", False),
        (403, 502, "upstream_auth", False),
        (404, 502, "upstream_not_found", True),
        (500, 502, None, True),
        (503, 502, None, True),
        (529, 502, None, True),
    ],
)
async def test_error_statuses_map_to_the_documented_client_status(
    kind: str,
    name: str,
    malformed: bytes,
    status: int,
    client_status: int,
    code: str | None,
    retryable: bool,
    upstream: FakeUpstream,
    session: aiohttp.ClientSession,
) -> None:
    upstream.push(Reply(b'{"error": {"message": "nope sk-abc", "type": "x"}}', status, "application/json"))
    got = await collect(make(kind, upstream.url, session), request())
    assert got.error is not None
    assert got.error.status == client_status
    assert got.error.retryable is retryable
    assert got.error.started is False
    if code is not None:
        assert got.error.code == code
    if code == "upstream_auth":
        assert "sk-abc" not in got.error.message


@pytest.mark.parametrize(("kind", "name", "malformed"), KINDS)
async def test_cancelling_the_consumer_closes_the_upstream_connection_within_100ms(
    kind: str, name: str, malformed: bytes, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    body = load(name).body
    upstream.push(Reply(body, hold_after=len(body) * 2 // 3))
    provider = make(kind, upstream.url, session)
    first_output = asyncio.Event()

    async def consume() -> None:
        async for event in provider.stream(request()):
            if type(event).__name__ in ("TextDelta", "ReasoningDelta", "ToolCallDelta"):
                first_output.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_output.wait(), 5)
    await asyncio.sleep(0.05)  # the provider is now silent; the adapter waits on a read
    loop = asyncio.get_running_loop()
    cancelled_at = loop.time()
    task.cancel()
    await asyncio.wait_for(upstream.client_closed.wait(), 1)
    assert upstream.closed_at[0] - cancelled_at < 0.1
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize(("kind", "name", "malformed"), KINDS)
async def test_cancelling_a_consumer_busy_between_events_closes_the_connection_via_aclosing(
    kind: str, name: str, malformed: bytes, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    """The worker iterates inside `contextlib.aclosing`: a cancel that lands while the consumer
    itself is awaiting (sending a frame), with the adapter parked at a `yield`, still closes."""
    upstream.push(Reply(load(name).body, hold_after=len(load(name).body) * 2 // 3))
    provider = make(kind, upstream.url, session)
    busy = asyncio.Event()

    async def consume() -> None:
        async with contextlib.aclosing(provider.stream(request())) as events:
            async for _ in events:
                busy.set()
                await asyncio.sleep(3600)  # a slow frame send

    task = asyncio.create_task(consume())
    await asyncio.wait_for(busy.wait(), 5)
    cancelled_at = asyncio.get_running_loop().time()
    task.cancel()
    await asyncio.wait_for(upstream.client_closed.wait(), 1)
    assert upstream.closed_at[0] - cancelled_at < 0.1
