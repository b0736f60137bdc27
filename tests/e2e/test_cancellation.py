"""Issue 3, cancellation: a client that goes away stops the provider call within 100 ms, across the
whole stack (SDK → gateway → NATS cancel → worker → adapter → provider connection), and the
usage event bills the partial answer as partial."""

from __future__ import annotations

import time

import pytest

from lobe.devtools.fake_upstream import FakeUpstream
from lobe.devtools.provider_fixtures import load
from lobe.devtools.pytest_plugin import MakeUpstream

from .conftest import Suite
from .providers import public_model, routed_worker
from .test_chat_path import usage_events
from .test_providers_via_sdk import MESSAGES, sdk

CHUNK_DELAY_S = 0.25  # a slow model: one SSE event every 250 ms
CANCEL_BUDGET_S = 0.1


@pytest.fixture
async def slow_upstream(make_upstream: MakeUpstream) -> FakeUpstream:
    """A fake OpenAI answering one slow stream (an event every CHUNK_DELAY_S)."""
    server = await make_upstream()
    server.push(load("openai/chat_stream_text.sse").reply(split_events=True, chunk_delay_s=CHUNK_DELAY_S))
    return server


async def test_client_disconnect_closes_the_provider_connection_within_100_ms(
    gateway_only: Suite, slow_upstream: FakeUpstream
) -> None:
    async with routed_worker(gateway_only.nats_url, "openai", slow_upstream):
        stream = await sdk(gateway_only).chat.completions.create(
            model=public_model("openai"), messages=MESSAGES, stream=True
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        assert not slow_upstream.closed_at  # the provider is still mid-answer
        disconnected_at = time.monotonic()  # the fake upstream stamps with the same clock
        await stream.close()
        [event] = await usage_events(gateway_only, expect=1)

    [closed_at] = slow_upstream.closed_at
    took = closed_at - disconnected_at
    assert 0 <= took < CANCEL_BUDGET_S, (
        f"provider connection closed {took * 1000:.1f} ms after the client left"
    )
    assert event.status == "cancelled"
    assert event.usage.basis == "partial"
    assert event.usage.completion_tokens > 0  # the text the client did receive is billed
    assert (event.provider, event.deployment) == ("openai", "fake-openai")
    whole_answer_ms = load("openai/chat_stream_text.sse").body.count(b"\n\n") * CHUNK_DELAY_S * 1000
    assert event.duration_ms < whole_answer_ms / 2  # stopped, not run to the end
