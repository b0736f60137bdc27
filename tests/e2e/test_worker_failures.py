"""Guarantees 1, 2 and 6: a worker that dies or stops never leaves a client hanging or fooled."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable

import openai
import pytest
from nats.aio.msg import Msg

from lobe.chat_worker.providers.mock import mock_answer
from lobe.shared.bus import flush
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.chat import CHAT_REQUEST, decode_frame
from lobe.shared.events.usage import USAGE_REPORTED, USAGE_SUBJECTS, UsageRecorded

from .conftest import Suite, start_worker
from .test_chat_path import MESSAGES, usage_events

StartWorker = Callable[..., Awaitable[asyncio.subprocess.Process]]


def answer_for(model: str) -> str:
    return "".join(mock_answer(ChatCompletionRequest.model_validate({"model": model, "messages": MESSAGES})))


async def request_seen(suite: Suite) -> asyncio.Event:
    """Set when a chat request goes out on the bus (a plain subscriber sees queue traffic too)."""
    seen = asyncio.Event()

    async def spy(_: Msg) -> None:
        seen.set()

    await suite.nc.subscribe(CHAT_REQUEST, cb=spy)
    await flush(suite.nc)  # live before the test sends the request (from the gateway's connection)
    return seen


async def ask_for(suite: Suite, model: str, stream: bool) -> tuple[str, str | None]:
    """The whole answer, streamed or not: its text and finish reason."""
    if not stream:
        completion = await suite.client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=2)
        return completion.choices[0].message.content or "", completion.choices[0].finish_reason
    chunks = await suite.client.chat.completions.create(
        model=model, messages=MESSAGES, max_tokens=2, stream=True
    )
    text, finish = [], None
    async for chunk in chunks:
        if chunk.choices:
            text.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
    return "".join(text), finish


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_worker_killed_before_first_token_answer_comes_from_another_worker(
    gateway_only: Suite, worker_process: StartWorker, stream: bool
) -> None:
    doomed = await worker_process()
    seen = await request_seen(gateway_only)
    ask = asyncio.create_task(ask_for(gateway_only, "mock-stall", stream))
    await asyncio.wait_for(seen.wait(), 5)
    survivor = await start_worker(gateway_only.nats_url)  # joins the queue group after the hand-over
    try:
        await asyncio.sleep(0.2)  # the doomed worker has accepted; its first token is 1.5 s away
        doomed.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        text, finish = await asyncio.wait_for(ask, 20)
        answered_after = time.monotonic() - killed_at
    finally:
        await survivor.stop()
    assert finish == "length"
    assert text == "".join(
        mock_answer(ChatCompletionRequest.model_validate({"model": "mock-stall", "messages": MESSAGES}))[:2]
    )
    [event] = await usage_events(gateway_only, expect=1)
    assert event.status == "ok"
    # WORKER_SILENCE_S (1 s here) to notice, then the survivor's answer (its first token 1.5 s away).
    print(
        f"\nworker SIGKILLed before its first token ({'SSE' if stream else 'JSON'}): answered {answered_after:.2f} s later"
    )


async def test_worker_killed_mid_stream_gives_an_error_event_not_done(
    gateway_only: Suite, worker_process: StartWorker
) -> None:
    doomed = await worker_process()
    stream = await gateway_only.client.chat.completions.create(
        model="mock-slow", messages=MESSAGES, stream=True
    )
    received: list[str] = []
    killed_at = 0.0

    async def read_all() -> None:
        nonlocal killed_at
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
                if len(received) == 2:
                    doomed.send_signal(signal.SIGKILL)
                    killed_at = time.monotonic()

    with pytest.raises(openai.APIError) as caught:
        await read_all()
    print(f"\nworker SIGKILLed mid-stream: error event {time.monotonic() - killed_at:.2f} s later")
    assert "stopped responding" in str(caught.value)
    assert 2 <= len(received) < len(answer_for("mock-slow").split(" "))
    # The dead worker never recorded usage; the gateway records what the client received.
    [event] = await usage_events(gateway_only, expect=1)
    assert (event.status, event.error_code, event.usage.basis) == ("error", "worker_lost", "partial")
    assert event.usage.completion_tokens > 0


async def test_worker_killed_mid_answer_in_non_streaming_mode_records_one_partial_usage_event(
    gateway_only: Suite, worker_process: StartWorker
) -> None:
    doomed = await worker_process()
    first_delta = asyncio.Event()
    published: list[tuple[str, UsageRecorded]] = []

    async def frames(msg: Msg) -> None:
        if decode_frame(msg.data).type in ("delta", "deltas"):
            first_delta.set()

    async def usage(msg: Msg) -> None:
        published.append((msg.subject, UsageRecorded.decode(msg.data)))

    await gateway_only.nc.subscribe("chat.reply.>", cb=frames)
    for usage_subject in USAGE_SUBJECTS:  # every publish, duplicates included
        await gateway_only.nc.subscribe(usage_subject, cb=usage)
    client = gateway_only.client.with_options(max_retries=0)
    ask = asyncio.create_task(client.chat.completions.create(model="mock-slow", messages=MESSAGES))
    await asyncio.wait_for(first_delta.wait(), 5)
    doomed.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        await asyncio.wait_for(ask, 20)
    print(f"\nworker SIGKILLed mid-answer (JSON): 502 {time.monotonic() - killed_at:.2f} s later")
    assert caught.value.status_code == 502
    assert "stopped responding" in caught.value.message
    [event] = await usage_events(gateway_only, expect=1)
    assert (event.status, event.error_code, event.usage.basis) == ("error", "worker_lost", "partial")
    assert event.usage.completion_tokens > 0  # the deltas the gateway received before the loss
    assert event.stream is False
    await gateway_only.nc.flush()
    # One publish, by the gateway, on its own subject.
    assert [(subject, e.request_id) for subject, e in published] == [(USAGE_REPORTED, event.request_id)]


async def test_sigterm_lets_an_answer_in_flight_finish(
    gateway_only: Suite, worker_process: StartWorker
) -> None:
    worker = await worker_process()
    stream = await gateway_only.client.chat.completions.create(
        model="mock-slow", messages=MESSAGES, stream=True
    )
    text = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text.append(chunk.choices[0].delta.content)
            if len(text) == 1:
                worker.send_signal(signal.SIGTERM)
    assert "".join(text) == answer_for("mock-slow")
    assert await asyncio.wait_for(worker.wait(), 10) == 0


async def test_sigterm_past_the_grace_ends_the_answer_with_an_error_event(
    gateway_only: Suite, worker_process: StartWorker
) -> None:
    worker = await worker_process(SHUTDOWN_GRACE_S="0.3")
    stream = await gateway_only.client.chat.completions.create(
        model="mock-slow", messages=MESSAGES, stream=True
    )
    text: list[str] = []

    async def read_all() -> None:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                text.append(chunk.choices[0].delta.content)
                if len(text) == 1:
                    worker.send_signal(signal.SIGTERM)

    with pytest.raises(openai.APIError) as caught:
        await read_all()
    assert "worker shut down" in caught.value.message
    assert len(text) < len(answer_for("mock-slow").split(" "))
    assert await asyncio.wait_for(worker.wait(), 10) == 0
    [event] = await usage_events(gateway_only, expect=1)
    assert event.status == "cancelled"
