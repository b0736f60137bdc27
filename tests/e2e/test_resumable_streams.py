"""Issue 19 item 6, resumable streams: a client that asked for one (`X-Lobe-Resumable: true`) and
lost its connection mid-answer gets the rest of the same answer from another gateway replica,
with one provider call and one ledger row; nobody else can read it; it is gone after its window;
an answer nobody resumes is cancelled after the grace; the openai SDK reads such a stream as any.
A Responses stream (POST /v1/responses) is resumable the same way, an id on each of its events."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import nats
import pytest
from aiohttp import web
from openai import AsyncOpenAI
from redis.asyncio import Redis

from lobe.billing.service import BillingService
from lobe.chat_worker.deployments import BUILTIN
from lobe.devtools.fake_upstream import FakeUpstream
from lobe.devtools.provider_fixtures import load
from lobe.devtools.pytest_plugin import MakeUpstream
from lobe.gateway.resume.store import owner_key, stream_key

from .conftest import API_KEY, Suite, billing_settings, start_gateway, start_worker
from .providers import public_model, routed_worker
from .test_cancellation import CHUNK_DELAY_S
from .test_chat_path import usage_events

STRANGER_KEY = "sk-test-mallory"
KEYS = f"{API_KEY}:alice:basic,{STRANGER_KEY}:mallory:basic"
TRANSCRIPT = "openai/chat_stream_text.sse"
WHOLE_ANSWER = load(TRANSCRIPT).meta["expected"]["choices"][0]["text"]
RESUMABLE = {"X-Lobe-Resumable": "true"}
MESSAGES = [{"role": "user", "content": "What is the capital of the UK?"}]


def auth(key: str = API_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Event:
    id: str | None
    data: str

    @property
    def content(self) -> str:
        if self.data == "[DONE]":
            return ""
        payload = json.loads(self.data)
        if "type" in payload:  # a Responses event: only its text deltas carry text
            return str(payload["delta"]) if payload["type"] == "response.output_text.delta" else ""
        choices = payload.get("choices") or [{}]
        return str(choices[0].get("delta", {}).get("content") or "")


def parse(raw: bytes) -> list[Event]:
    events = []
    for block in raw.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            events.append(Event(fields.get("id"), fields["data"]))
    return events


async def read_until_content(response: aiohttp.ClientResponse, deltas: int) -> list[Event]:
    """Read the stream until `deltas` events with text have come (then the caller cuts it)."""
    raw = b""
    while sum(1 for e in parse(raw) if e.content) < deltas:
        chunk = await response.content.readany()
        assert chunk, "the stream ended before the client cut it"
        raw += chunk
    complete = raw[: raw.rfind(b"\n\n") + 2]  # a half-read event is not the client's yet
    return parse(complete)


async def whole_resumable_answer(http: aiohttp.ClientSession, base_url: str) -> tuple[str, str]:
    """Ask the mock model for a resumable stream and read it to its end: (request id, resume path)."""
    body = {"model": "mock", "messages": MESSAGES, "stream": True}
    async with http.post(f"{base_url}/v1/chat/completions", json=body, headers=auth() | RESUMABLE) as r:
        await r.read()
        return r.headers["X-Request-Id"], r.headers["X-Lobe-Resume"]


async def resume(
    http: aiohttp.ClientSession, base_url: str, path: str, last_id: str | None, key: str = API_KEY
) -> tuple[int, bytes]:
    headers = auth(key) | ({"Last-Event-ID": last_id} if last_id else {})
    async with http.get(base_url + path, headers=headers) as r:
        return r.status, await r.read()


async def ledger_rows(dsn: str, expect: int, timeout_s: float = 10.0) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            rows = await conn.fetch("SELECT request_id, status FROM usage_ledger")
            if len(rows) >= expect or time.monotonic() > deadline:
                return rows
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


@pytest.fixture
async def paced_upstream(make_upstream: MakeUpstream) -> FakeUpstream:
    """A fake OpenAI answering one slow stream (an event every CHUNK_DELAY_S)."""
    server = await make_upstream()
    server.push(load(TRANSCRIPT).reply(split_events=True, chunk_delay_s=CHUNK_DELAY_S))
    return server


@pytest.fixture
async def replicas(nats_url: str, redis_url: str) -> AsyncIterator[list[str]]:
    """Two gateway replicas sharing NATS and Redis, as in production; billing off."""
    runners: list[web.AppRunner] = []
    urls = []
    for _ in range(2):
        runner, url = await start_gateway(nats_url, redis_url=redis_url, gateway_api_keys=KEYS)
        runners.append(runner)
        urls.append(url)
    yield urls
    for runner in runners:
        await runner.cleanup()


async def test_a_stream_cut_mid_answer_resumes_on_another_replica_with_one_provider_call_and_one_ledger_row(
    nats_url: str, redis_url: str, billing_db: str, paced_upstream: FakeUpstream
) -> None:
    async with BillingService(billing_settings(nats_url, billing_db, "admin")) as billing:
        assert billing.admin is not None
        await billing.admin.create_user("alice", plan="basic")
        a_runner, replica_a = await start_gateway(
            nats_url, redis_url=redis_url, gateway_api_keys=KEYS, billing_enabled=True
        )
        b_runner, replica_b = await start_gateway(
            nats_url, redis_url=redis_url, gateway_api_keys=KEYS, billing_enabled=True
        )
        try:
            async with routed_worker(nats_url, "openai", paced_upstream), aiohttp.ClientSession() as http:
                body = {"model": public_model("openai"), "messages": MESSAGES, "stream": True}
                response = await http.post(
                    f"{replica_a}/v1/chat/completions", json=body, headers=auth() | RESUMABLE
                )
                assert response.status == 200
                request_id, path = response.headers["X-Request-Id"], response.headers["X-Lobe-Resume"]
                before = await read_until_content(response, deltas=2)
                response.close()  # the client's socket closes mid-answer (a phone going into a tunnel)
                assert not paced_upstream.closed_at  # the provider is still answering

                status, raw = await resume(http, replica_b, path, before[-1].id)
            [row] = await ledger_rows(billing_db, expect=1)
        finally:
            await a_runner.cleanup()
            await b_runner.cleanup()
    assert status == 200
    after = parse(raw)
    ids = [e.id for e in before + after]
    assert ids == [f"{request_id}:{n}" for n in range(1, len(ids) + 1)]  # no gap, no repeat
    assert after[-1].data == "[DONE]"
    assert "".join(e.content for e in before + after) == WHOLE_ANSWER
    assert len(paced_upstream.requests) == 1  # the same answer, not a second one
    assert (row["request_id"], row["status"]) == (request_id, "ok")  # billed once, in full


async def test_a_responses_stream_cut_mid_answer_resumes_on_another_replica_with_an_id_per_event(
    nats_url: str, replicas: list[str], paced_upstream: FakeUpstream
) -> None:
    async with (
        routed_worker(nats_url, "openai", paced_upstream, serves=["chat", "responses"]),
        aiohttp.ClientSession() as http,
    ):
        body = {"model": public_model("openai"), "input": MESSAGES[0]["content"], "stream": True}
        response = await http.post(f"{replicas[0]}/v1/responses", json=body, headers=auth() | RESUMABLE)
        assert response.status == 200
        request_id, path = response.headers["X-Request-Id"], response.headers["X-Lobe-Resume"]
        before = await read_until_content(response, deltas=2)
        response.close()
        assert not paced_upstream.closed_at

        status, raw = await resume(http, replicas[1], path, before[-1].id)
    assert status == 200
    after = parse(raw)
    ids = [e.id for e in before + after]
    assert ids == [f"{request_id}:{n}" for n in range(1, len(ids) + 1)]  # no gap, no repeat
    # One id per Responses event, not per write: event n is the one with sequence_number n - 1.
    assert [json.loads(e.data)["sequence_number"] for e in before + after] == list(range(len(ids)))
    assert json.loads(after[-1].data)["type"] == "response.completed"
    assert "".join(e.content for e in before + after) == WHOLE_ANSWER
    assert len(paced_upstream.requests) == 1


async def test_nobody_but_the_user_who_asked_can_resume_a_stream(nats_url: str, replicas: list[str]) -> None:
    worker = await start_worker(nats_url)
    try:
        async with aiohttp.ClientSession() as http:
            _, path = await whole_resumable_answer(http, replicas[0])
            stranger = await resume(http, replicas[1], path, None, key=STRANGER_KEY)
            unknown = await resume(http, replicas[1], "/v1/chat/completions/0123abcd/stream", None)
            owner = await resume(http, replicas[1], path, None)
            bad_id = await resume(http, replicas[1], path, "someone-else:3")
    finally:
        await worker.stop()
    for status, raw in (stranger, unknown):
        assert status == 404
        assert json.loads(raw)["error"]["code"] == "stream_not_found"  # not told it exists
    assert owner[0] == 200
    assert parse(owner[1])[-1].data == "[DONE]"
    assert bad_id[0] == 400
    assert json.loads(bad_id[1])["error"]["code"] == "invalid_last_event_id"


async def test_a_stream_past_its_window_is_404_with_an_openai_error(nats_url: str, redis_url: str) -> None:
    worker = await start_worker(nats_url)
    runner, base_url = await start_gateway(nats_url, redis_url=redis_url, resume_window_s=1)
    redis = Redis.from_url(redis_url)
    try:
        async with aiohttp.ClientSession() as http:
            request_id, path = await whole_resumable_answer(http, base_url)
            assert (await resume(http, base_url, path, None))[0] == 200  # within the window
            deadline = time.monotonic() + 10
            while await redis.exists(stream_key(request_id), owner_key(request_id)):
                assert time.monotonic() < deadline, "the stream outlived its window"
                await asyncio.sleep(0.1)
            status, raw = await resume(http, base_url, path, f"{request_id}:1")
    finally:
        await redis.aclose()
        await runner.cleanup()
        await worker.stop()
    assert status == 404
    assert json.loads(raw)["error"] == {
        "message": f"No resumable stream {request_id!r}: unknown, expired, or not yours.",
        "type": "invalid_request_error",
        "param": None,
        "code": "stream_not_found",
    }


async def test_an_answer_nobody_resumes_is_cancelled_after_the_grace_and_its_replay_says_so(
    nats_url: str, redis_url: str, paced_upstream: FakeUpstream
) -> None:
    runner, base_url = await start_gateway(nats_url, redis_url=redis_url, resume_grace_s=0.3)
    nc = await nats.connect(nats_url)
    try:
        async with routed_worker(nats_url, "openai", paced_upstream), aiohttp.ClientSession() as http:
            suite = Suite(base_url, nats_url, nc, AsyncOpenAI(base_url=base_url, api_key=API_KEY), http)
            body = {"model": public_model("openai"), "messages": MESSAGES, "stream": True}
            response = await http.post(
                f"{base_url}/v1/chat/completions", json=body, headers=auth() | RESUMABLE
            )
            path = response.headers["X-Lobe-Resume"]
            before = await read_until_content(response, deltas=1)
            response.close()
            await paced_upstream.client_closed.wait()  # cancelled: the provider call is closed
            [event] = await usage_events(suite, expect=1)
            status, raw = await resume(http, base_url, path, before[-1].id)
    finally:
        await nc.close()
        await runner.cleanup()
    assert event.status == "cancelled"
    assert event.duration_ms >= 300  # after the grace, not at the disconnect
    assert status == 200
    last = parse(raw)[-1]
    assert json.loads(last.data)["error"]["code"] == "stream_cancelled"  # an error, never a false end
    assert "[DONE]" not in raw.decode()


async def test_the_openai_sdk_reads_resumable_streams_and_a_plain_one_has_no_ids(
    nats_url: str, replicas: list[str]
) -> None:
    worker = await start_worker(nats_url, BUILTIN)  # the built-in mock serves responses too
    client = AsyncOpenAI(base_url=f"{replicas[0]}/v1", api_key=API_KEY, max_retries=0)
    try:
        texts = []
        for headers in (RESUMABLE, {}):
            stream = await client.chat.completions.create(
                model="mock",
                messages=MESSAGES,
                stream=True,
                extra_headers=headers,  # type: ignore[arg-type]
            )
            texts.append("".join([c.choices[0].delta.content or "" async for c in stream if c.choices]))
        answers = []
        for headers in (RESUMABLE, {}):
            events = await client.responses.create(
                model="mock",
                input=MESSAGES[0]["content"],
                stream=True,
                extra_headers=headers,  # type: ignore[arg-type]
            )
            answers.append([e.response.output_text async for e in events if e.type == "response.completed"])
        async with aiohttp.ClientSession() as http:
            body: dict[str, Any] = {"model": "mock", "messages": MESSAGES, "stream": True}
            async with http.post(f"{replicas[0]}/v1/chat/completions", json=body, headers=auth()) as r:
                plain = await r.read()
                assert "X-Lobe-Resume" not in r.headers
    finally:
        await worker.stop()
    assert texts[0] == texts[1] != ""
    assert answers[0] == answers[1] != [""]  # a Responses stream's ids are as unseen by the SDK
    assert b"id: " not in plain
