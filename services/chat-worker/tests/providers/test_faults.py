"""Faults every adapter must turn into an explicit ProviderError (never a hang, never a clean
finish): error statuses, a slow first byte, silence mid-stream, a cut connection, a malformed
chunk, and cancellation reaching the provider's connection."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import aiohttp
import pytest

from lobe.chat_worker.providers.base import Provider
from lobe.chat_worker.providers.registry import build_provider
from lobe.devtools.fake_upstream import FakeUpstream, Reply
from lobe.devtools.provider_fixtures import Transcript, load

from .support import deployment, request, serve

# (provider kind, a successful streaming transcript of it, a malformed chunk in its framing)
ADAPTERS: list[tuple[str, str, bytes]] = [
    ("openai", "openai/chat_stream_text.sse", b'data: {"choices": [{"delta": {"content": "x"}}\n\n'),
    ("anthropic", "anthropic/messages_stream_text.sse", b'event: ping\ndata: {"type": "ping"\n\n'),
    ("gemini", "gemini/stream_text_thoughts_usage.sse", b'data: {"candidates": [{"content": \r\n\r\n'),
    ("ollama", "ollama/api_generate_stream.ndjson", b'{"model":"m","response":"x",\n'),
]


@dataclass(frozen=True)
class Adapter:
    kind: str
    transcript: Transcript
    malformed: bytes

    @property
    def body(self) -> bytes:
        return self.transcript.body

    @property
    def content_type(self) -> str:
        return self.transcript.content_type


@pytest.fixture(params=ADAPTERS, ids=[kind for kind, _, _ in ADAPTERS])
def adapter(request: pytest.FixtureRequest) -> Adapter:
    """Every test below runs once per wire format."""
    kind, name, malformed = request.param
    return Adapter(kind, load(name), malformed)


def make(adapter: Adapter, url: str, session: aiohttp.ClientSession) -> Provider:
    return build_provider(deployment(adapter.kind, url), session)


async def test_slow_first_byte_times_out_within_first_byte_budget_and_is_retryable(
    adapter: Adapter, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    reply = Reply(adapter.body, first_byte_delay_s=5)
    loop = asyncio.get_running_loop()
    began = loop.time()
    got = await serve(upstream, session, reply, adapter.kind, timeouts={"first_byte_s": 0.2})
    elapsed = loop.time() - began
    assert got.error is not None
    assert (got.error.status, got.error.code) == (504, "upstream_timeout")
    assert (got.error.retryable, got.error.started) == (True, False)
    assert 0.2 <= elapsed < 0.4
    assert got.finished is None


async def test_silence_mid_stream_times_out_after_idle_budget_as_started_not_retryable(
    adapter: Adapter, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    reply = Reply(adapter.body, hold_after=len(adapter.body) * 2 // 3)
    got = await serve(upstream, session, reply, adapter.kind, timeouts={"idle_s": 0.2})
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


async def test_total_budget_ends_a_dripping_stream(
    adapter: Adapter, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    reply = Reply(adapter.body, hold_after=len(adapter.body) - 3)
    got = await serve(upstream, session, reply, adapter.kind, timeouts={"idle_s": 5, "total_s": 0.3})
    assert got.error is not None
    assert got.error.code == "upstream_timeout"
    assert "longer than 0.3s" in got.error.message


@pytest.mark.parametrize("fraction", [0.5, 0.97])
async def test_disconnect_mid_stream_is_an_error_after_output_never_a_clean_finish(
    adapter: Adapter,
    fraction: float,
    upstream: FakeUpstream,
    session: aiohttp.ClientSession,
) -> None:
    reply = Reply(adapter.body, cut_after=int(len(adapter.body) * fraction))
    got = await serve(upstream, session, reply, adapter.kind)
    assert got.error is not None
    assert got.error.started is True
    assert got.error.status == 502
    assert got.finished is None


async def test_body_ending_cleanly_before_the_finish_is_truncation_not_success(
    adapter: Adapter, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    reply = Reply(adapter.body[: len(adapter.body) // 2], content_type=adapter.content_type)
    got = await serve(upstream, session, reply, adapter.kind)
    assert got.error is not None
    assert got.error.status == 502
    assert got.finished is None


async def test_malformed_chunk_is_an_error_naming_the_chunk(
    adapter: Adapter, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    reply = Reply(adapter.malformed, content_type=adapter.content_type)
    got = await serve(upstream, session, reply, adapter.kind)
    assert got.error is not None
    assert (got.error.status, got.error.code) == (502, "upstream_malformed")
    assert adapter.malformed.decode().split("data: ")[-1].strip() in got.error.message


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
    adapter: Adapter,
    status: int,
    client_status: int,
    code: str | None,
    retryable: bool,
    upstream: FakeUpstream,
    session: aiohttp.ClientSession,
) -> None:
    reply = Reply(b'{"error": {"message": "nope sk-abc", "type": "x"}}', status, "application/json")
    got = await serve(upstream, session, reply, adapter.kind)
    assert got.error is not None
    assert got.error.status == client_status
    assert got.error.retryable is retryable
    assert got.error.started is False
    if code is not None:
        assert got.error.code == code
    if code == "upstream_auth":
        assert "sk-abc" not in got.error.message


async def test_cancelling_the_consumer_closes_the_upstream_connection_within_100ms(
    adapter: Adapter, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.push(Reply(adapter.body, hold_after=len(adapter.body) * 2 // 3))
    provider = make(adapter, upstream.url, session)
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


async def test_cancelling_a_consumer_busy_between_events_closes_the_connection_via_aclosing(
    adapter: Adapter, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    """The worker iterates inside `contextlib.aclosing`: a cancel that lands while the consumer
    itself is awaiting (sending a frame), with the adapter parked at a `yield`, still closes."""
    upstream.push(Reply(adapter.body, hold_after=len(adapter.body) * 2 // 3))
    provider = make(adapter, upstream.url, session)
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
