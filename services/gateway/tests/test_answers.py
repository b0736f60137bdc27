"""The answer loop through the real gateway app, a scripted worker behind it: one loop, two
outputs. A failure before the first byte is an HTTP status in OpenAI's error format; after it, an
SSE stream ends with an error event and never with `[DONE]`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from nats.aio.client import Client as NATS

from .support import HEADERS, Script, ScriptedWorker, accepted, delta, finish, serving


def chat(stream: bool) -> dict[str, object]:
    return {"model": "mock", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def chat_url(nats_url: str) -> AsyncIterator[str]:
    async with serving(nats_url, worker_silence_s=0.5) as base_url:
        yield f"{base_url}/v1/chat/completions"


def gap_after(deltas: int) -> object:
    def script(rid: str) -> Script:
        frames = [delta(rid, seq, f"w{seq}") for seq in range(1, deltas + 1)]
        return accepted(rid), [*frames, delta(rid, deltas + 2, "skipped one")]

    return script


def events(body: str) -> list[str]:
    return [line.removeprefix("data: ") for line in body.split("\n\n") if line.startswith("data: ")]


async def post(url: str, stream: bool) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json=chat(stream), headers=HEADERS) as response,
    ):
        return response.status, await response.text()


async def test_a_streamed_answer_is_role_deltas_finish_and_done(chat_url: str, worker_nc: NATS) -> None:
    await ScriptedWorker(
        worker_nc, scripts=[lambda rid: (accepted(rid), [delta(rid, 1, "Hi"), *finish(rid, 2)])]
    ).start()
    status, body = await post(chat_url, stream=True)
    assert status == 200
    *chunks, done = events(body)
    assert done == "[DONE]"
    deltas = [json.loads(c)["choices"][0] for c in chunks]
    assert deltas[0]["delta"] == {"role": "assistant", "content": "Hi"}
    assert deltas[-1]["finish_reason"] == "stop"


async def test_a_failure_after_the_first_byte_ends_the_stream_with_an_error_event_and_no_done(
    chat_url: str, worker_nc: NATS
) -> None:
    await ScriptedWorker(worker_nc, scripts=[gap_after(2)]).start()
    status, body = await post(chat_url, stream=True)
    assert status == 200  # already sent with the first chunk
    *chunks, last = events(body)
    assert len(chunks) == 2
    assert json.loads(last)["error"]["code"] == "stream_gap"
    assert "[DONE]" not in body


async def test_a_failure_before_the_first_byte_is_an_http_error_in_both_modes(
    chat_url: str, worker_nc: NATS
) -> None:
    await ScriptedWorker(worker_nc, scripts=[gap_after(0), gap_after(0)]).start()
    for stream in (True, False):
        status, body = await post(chat_url, stream=stream)
        assert status == 502
        assert json.loads(body)["error"]["code"] == "stream_gap"


async def test_a_non_streamed_answer_failing_mid_answer_is_an_http_error(
    chat_url: str, worker_nc: NATS
) -> None:
    await ScriptedWorker(worker_nc, scripts=[gap_after(3)]).start()
    status, body = await post(chat_url, stream=False)
    assert status == 502
    assert json.loads(body)["error"] == {
        "message": "frame 4 of the answer was lost",
        "type": "upstream_error",
        "param": None,
        "code": "stream_gap",
    }


async def test_the_owning_worker_is_cancelled_when_the_answer_fails(chat_url: str, worker_nc: NATS) -> None:
    worker = await ScriptedWorker(worker_nc, scripts=[gap_after(1)]).start()
    await post(chat_url, stream=True)
    await worker.nc.flush()
    assert [(c.request_id, c.reason) for c in worker.cancels] == [
        (worker.requests[0].request_id, "abandoned")
    ]
