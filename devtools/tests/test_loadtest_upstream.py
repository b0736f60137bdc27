"""The load test's fake upstream: the answer its flags describe, on kept-alive connections."""

from __future__ import annotations

import json

import aiohttp

from lobe.devtools.loadtest.outcome import AnswerCheck
from lobe.devtools.loadtest.shape import PROMPT_TOKENS, Shape
from lobe.devtools.loadtest.upstream import FastUpstream


def events(body: bytes) -> list[bytes]:
    return [e.removeprefix(b"data: ") for e in body.split(b"\n\n") if e.startswith(b"data: ")]


async def test_streams_the_shape_then_finish_usage_and_done_over_one_kept_alive_connection() -> None:
    upstream = await FastUpstream(Shape(chunks=3)).start()
    try:
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as http:
            bodies = []
            for _ in range(3):
                async with http.post(
                    upstream.url + "/chat/completions", json={"model": "m", "stream": True}
                ) as r:
                    assert r.headers["Content-Type"] == "text/event-stream"
                    bodies.append(await r.read())
            async with http.get(upstream.url.removesuffix("/v1") + "/stats") as r:
                stats = await r.json()
    finally:
        await upstream.stop()
    assert stats["requests"] == 4
    assert upstream.counters.connections == set()  # closed at stop
    payloads = events(bodies[0])
    assert payloads[-1] == b"[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    check = AnswerCheck(Shape(chunks=3))
    for chunk in chunks[1:-2]:
        check.add(chunk["choices"][0]["delta"]["content"])
    check.finish = chunks[-2]["choices"][0]["finish_reason"]
    usage = chunks[-1]["usage"]
    check.prompt_tokens, check.completion_tokens = usage["prompt_tokens"], usage["completion_tokens"]
    assert check.verdict() is None
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert usage["total_tokens"] == PROMPT_TOKENS + 3
    assert bodies[1] == bodies[0]


async def test_non_streaming_gets_the_same_answer_as_one_object() -> None:
    upstream = await FastUpstream(Shape(chunks=4)).start()
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(upstream.url + "/chat/completions", json={"model": "m"}) as r,
        ):
            body = await r.json()
    finally:
        await upstream.stop()
    assert body["choices"][0]["message"]["content"] == Shape(chunks=4).text
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 4


async def test_a_paced_answer_arrives_in_pieces_and_a_bad_body_gets_400() -> None:
    upstream = await FastUpstream(Shape(chunks=3, ttft_s=0.02, tokens_per_s=100)).start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                upstream.url + "/chat/completions", json={"model": "m", "stream": True}
            ) as r:
                reads = [data async for data in r.content.iter_any()]
            async with http.post(upstream.url + "/chat/completions", data=b"not json") as r:
                status, error = r.status, await r.json()
    finally:
        await upstream.stop()
    assert len(reads) >= 3  # head, each delta on its own timer, the tail: never one write
    assert b"".join(reads).count(b'"content":"t') == 3
    assert status == 400
    assert "model" in error["error"]["message"]
