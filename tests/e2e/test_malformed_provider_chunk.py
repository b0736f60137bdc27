"""A provider chunk the adapter cannot read, mid-answer: the client gets an explicit error at once,
the provider is called once (no silence that would make the gateway re-dispatch), and exactly one
usage event records what was generated."""

from __future__ import annotations

import time

import openai
import pytest
from nats.aio.msg import Msg

from lobe.chat_worker.providers.errors import CLIENT_MESSAGES
from lobe.devtools.fake_upstream import FakeUpstream, Reply
from lobe.devtools.provider_fixtures import load
from lobe.shared.events.usage import USAGE_SUBJECTS, UsageRecorded

from .conftest import Suite
from .providers import public_model, routed_worker
from .test_chat_path import usage_events
from .test_providers_via_sdk import MESSAGES, sdk

TRANSCRIPT = load("openai/chat_stream_text.sse")
EVENTS_BEFORE = 4  # role chunk plus three content chunks reach the client first
ERROR_BUDGET_S = 1.0

MALFORMED = {
    # Not JSON at all: the SSE payload is cut inside an object.
    "broken_json": b'data: {"id":"x","choices":[{"index":0,"delta":{"content":"y"\n\n',
    # Valid JSON of a shape no OpenAI stream has: once a parser bug, now the provider's error.
    "wrong_shape": b'data: {"id":"x","object":"chat.completion.chunk","choices":"not a list"}\n\n',
}


def with_malformed_chunk(chunk: bytes) -> bytes:
    events = TRANSCRIPT.body.split(b"\n\n")
    head = b"\n\n".join(events[:EVENTS_BEFORE]) + b"\n\n"
    return head + chunk + b"\n\n".join(events[EVENTS_BEFORE:])


@pytest.mark.parametrize("kind", sorted(MALFORMED))
async def test_a_malformed_chunk_mid_stream_is_one_call_one_error_one_usage_event(
    gateway_only: Suite, upstream: FakeUpstream, kind: str
) -> None:
    upstream.push(Reply(with_malformed_chunk(MALFORMED[kind]), split_events=True))
    published: list[UsageRecorded] = []

    async def spy(msg: Msg) -> None:
        published.append(UsageRecorded.decode(msg.data))

    for usage_subject in USAGE_SUBJECTS:
        await gateway_only.nc.subscribe(usage_subject, cb=spy)
    received: list[str] = []
    async with routed_worker(gateway_only.nats_url, "openai", upstream):
        started = time.monotonic()
        stream = await sdk(gateway_only).chat.completions.create(
            model=public_model("openai"), messages=MESSAGES, stream=True
        )

        async def read_all() -> None:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    received.append(chunk.choices[0].delta.content)

        with pytest.raises(openai.APIError) as caught:
            await read_all()
        took = time.monotonic() - started
        [event] = await usage_events(gateway_only, expect=1)

    assert took < ERROR_BUDGET_S, f"the error reached the client after {took:.2f} s"
    assert caught.value.message == CLIENT_MESSAGES["upstream_malformed"]
    assert received  # the text before the bad chunk was streamed
    assert len(upstream.requests) == 1
    assert (event.status, event.error_code) == ("error", "upstream_malformed")
    assert event.usage.completion_tokens > 0
    await gateway_only.nc.flush()
    assert [e.request_id for e in published] == [event.request_id]
