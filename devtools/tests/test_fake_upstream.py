"""The fake upstream's replay options the e2e tests rely on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp

from lobe.devtools.fake_upstream import FakeUpstream, Reply
from lobe.devtools.provider_fixtures import load

SSE = b'data: {"a": 1}\n\ndata: {"b": 2}\n\ndata: [DONE]\n\n'


async def test_split_events_sends_one_http_chunk_per_sse_event_byte_for_byte() -> None:
    upstream = await FakeUpstream().start()
    upstream.push(Reply(SSE, split_events=True, chunk_delay_s=0.01))
    try:
        async with aiohttp.ClientSession() as http, http.post(upstream.url + "/v1/x", json={}) as response:
            chunks = [chunk async for chunk, _ in response.content.iter_chunks() if chunk]
    finally:
        await upstream.stop()
    assert chunks == [b'data: {"a": 1}\n\n', b'data: {"b": 2}\n\n', b"data: [DONE]\n\n"]
    assert upstream.last.path == "/v1/x"


async def test_default_reply_answers_every_request_once_pushed_ones_run_out() -> None:
    transcript = load("openai/chat_completion.json")
    upstream = await FakeUpstream(default=transcript.reply()).start()
    upstream.push(Reply(b"first", content_type="text/plain"))
    try:
        async with aiohttp.ClientSession() as http:
            bodies = []
            for _ in range(3):
                async with http.post(upstream.url, data=b"{}") as response:
                    bodies.append((response.status, response.content_type, await response.read()))
    finally:
        await upstream.stop()
    assert bodies[0] == (200, "text/plain", b"first")
    assert bodies[1] == bodies[2] == (200, "application/json", transcript.body)


async def test_a_client_leaving_a_slow_reply_is_recorded_at_once() -> None:
    upstream = await FakeUpstream().start()
    upstream.push(Reply(SSE, split_events=True, chunk_delay_s=5))
    try:
        async with aiohttp.ClientSession() as http:
            response = await http.post(upstream.url, json={})
            await response.content.readuntil(b"\n\n")
            left_at = time.monotonic()
            response.close()
            await asyncio.wait_for(upstream.client_closed.wait(), 1)
    finally:
        await upstream.stop()
    [closed_at] = upstream.closed_at
    assert 0 <= closed_at - left_at < 0.05


async def test_a_schedule_picks_each_requests_reply_by_its_number_and_arrivals_are_timed() -> None:
    failure = Reply(
        b'{"error": "down"}', status=503, content_type="application/json", headers={"Retry-After": "1"}
    )
    upstream = await FakeUpstream(
        default=Reply(b"ok", content_type="text/plain"), schedule=lambda n: failure if n % 2 == 0 else None
    ).start()
    try:
        async with aiohttp.ClientSession() as http:
            answers = []
            for _ in range(4):
                async with http.post(upstream.url, data=b"{}") as response:
                    answers.append((response.status, response.headers.get("Retry-After")))
    finally:
        await upstream.stop()
    assert answers == [(503, "1"), (200, None), (503, "1"), (200, None)]
    times = [r.at for r in upstream.requests]
    assert times == sorted(times)
    assert abs(times[0] - time.time()) < 5


async def test_a_chunked_request_body_is_read_whole() -> None:
    """aiohttp sends a body read from an async iterator as HTTP chunks, with no Content-Length."""
    data = bytes(range(256)) * 1000

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 7_001):
            yield data[start : start + 7_001]

    upstream = await FakeUpstream(default=Reply(b"{}", content_type="application/json")).start()
    try:
        async with aiohttp.ClientSession() as http, http.post(upstream.url, data=pieces()) as response:
            assert response.status == 200
            async with http.post(upstream.url, data=b"after") as again:  # the exchange stayed in step
                assert again.status == 200
    finally:
        await upstream.stop()
    assert upstream.requests[0].headers["transfer-encoding"] == "chunked"
    assert upstream.requests[0].body == data
    assert upstream.requests[1].body == b"after"
