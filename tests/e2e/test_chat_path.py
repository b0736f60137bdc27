"""The chat path end to end: openai SDK → gateway → NATS → worker → usage on JetStream."""

from __future__ import annotations

import asyncio
import json
import time

import openai
import pytest
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from lobe.chat_worker.providers.mock import mock_answer
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.lifecycle import SERVICE_STARTED, ServiceLifecycle
from lobe.shared.events.streams import EVENTS, USAGE
from lobe.shared.events.usage import USAGE_RECORDED, USAGE_SUBJECTS, UsageRecorded

from .conftest import Suite, start_gateway

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is NATS?"}]


def expected_text(model: str = "mock", messages: list[dict[str, str]] = MESSAGES) -> str:
    return "".join(mock_answer(ChatCompletionRequest.model_validate({"model": model, "messages": messages})))


async def usage_events(suite: Suite, expect: int, timeout_s: float = 5.0) -> list[UsageRecorded]:
    """Every usage event (usage.recorded, or the gateway's usage.reported) in the USAGE stream, once
    `expect` messages are there."""
    js = suite.nc.jetstream()
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            info = await js.stream_info(USAGE.name)
            count = info.state.messages
        except NotFoundError:
            count = 0
        if count >= expect or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    events = []
    for seq in range(1, count + 1):
        msg = await js.get_msg(USAGE.name, seq)
        if msg.subject in USAGE_SUBJECTS:
            events.append(UsageRecorded.decode(msg.data or b""))
    return events


async def test_sdk_streams_the_mock_answer_with_usage_chunk(suite: Suite) -> None:
    stream = await suite.client.chat.completions.create(
        model="mock", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    text, finish, usage, ids = [], None, None, set()
    async for chunk in stream:
        ids.add(chunk.id)
        if chunk.choices:
            text.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert "".join(text) == expected_text()
    assert finish == "stop"
    assert usage is not None
    assert usage.completion_tokens > 0
    assert usage.prompt_tokens > 0
    assert len(ids) == 1


async def test_sdk_non_streaming_returns_one_completion(suite: Suite) -> None:
    completion = await suite.client.chat.completions.create(model="mock", messages=MESSAGES)
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == expected_text()
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (
        completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


async def test_max_tokens_cuts_the_answer_with_finish_reason_length(suite: Suite) -> None:
    completion = await suite.client.chat.completions.create(model="mock", messages=MESSAGES, max_tokens=2)
    chunks = mock_answer(ChatCompletionRequest.model_validate({"model": "mock", "messages": MESSAGES}))
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == "".join(chunks[:2])


async def test_one_usage_event_per_request_keyed_by_request_id(suite: Suite) -> None:
    raw = await suite.client.chat.completions.with_raw_response.create(model="mock", messages=MESSAGES)
    request_id = raw.headers["x-request-id"]
    completion = raw.parse()
    [event] = await usage_events(suite, expect=1)
    assert event.request_id == request_id
    assert event.user_id == "alice"
    assert event.status == "ok"
    assert (event.provider, event.deployment) == ("mock", "mock")
    assert completion.usage is not None
    assert event.usage.completion_tokens == completion.usage.completion_tokens
    assert event.ttft_ms is not None
    assert event.duration_ms >= event.ttft_ms


async def test_models_lists_what_workers_route(suite: Suite) -> None:
    models = await suite.client.models.list()
    assert [m.id for m in models.data] == ["mock", "mock-slow", "mock-stall"]


async def test_unknown_model_is_404_in_openai_format(suite: Suite) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await suite.client.chat.completions.create(model="gpt-nope", messages=MESSAGES)
    assert caught.value.code == "model_not_found"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "mock"}, "messages"),
        ({"model": "mock", "messages": [{"role": "wizard", "content": "hi"}]}, "messages.0"),
        ({"model": "mock", "messages": [{"role": "user", "content": "hi"}], "temperature": 3}, "temperature"),
        ({"model": "mock", "messages": [{"role": "user", "content": "hi"}], "logprobs": True}, "logprobs"),
    ],
)
async def test_invalid_request_is_400_naming_the_field_and_publishes_nothing(
    suite: Suite, body: dict[str, object], param: str
) -> None:
    seen: list[str] = []

    async def record(msg: Msg) -> None:
        seen.append(msg.subject)

    sub = await suite.nc.subscribe(">", cb=record)
    async with suite.http.post(
        f"{suite.base_url}/v1/chat/completions", json=body, headers=suite.headers()
    ) as r:
        error = (await r.json())["error"]
        assert r.status == 400
    await suite.nc.flush()
    await asyncio.sleep(0.1)
    await sub.unsubscribe()
    assert error["param"].startswith(param)
    assert error["type"] == "invalid_request_error"
    assert param in error["message"]
    assert [s for s in seen if s.startswith(("chat.", "usage."))] == []


async def test_malformed_json_is_400(suite: Suite) -> None:
    async with suite.http.post(
        f"{suite.base_url}/v1/chat/completions",
        data=b"{nope",
        headers={**suite.headers(), "Content-Type": "application/json"},
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "invalid_json"


async def test_missing_or_wrong_key_is_401(suite: Suite) -> None:
    bad = openai.AsyncOpenAI(base_url=f"{suite.base_url}/v1", api_key="sk-wrong")
    with pytest.raises(openai.AuthenticationError):
        await bad.chat.completions.create(model="mock", messages=MESSAGES)
    async with suite.http.post(f"{suite.base_url}/v1/chat/completions", json={}) as response:
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "missing_api_key"


async def test_body_over_the_limit_is_413(suite: Suite) -> None:
    huge = json.dumps({"model": "mock", "messages": [{"role": "user", "content": "x" * (5 * 1024 * 1024)}]})
    async with suite.http.post(
        f"{suite.base_url}/v1/chat/completions", data=huge, headers=suite.headers()
    ) as response:
        assert response.status == 413
        assert (await response.json())["error"]["type"] == "invalid_request_error"


async def test_body_within_http_limit_but_over_the_bus_limit_is_413_naming_it(suite: Suite) -> None:
    big = json.dumps({"model": "mock", "messages": [{"role": "user", "content": "x" * (2 * 1024 * 1024)}]})
    async with suite.http.post(
        f"{suite.base_url}/v1/chat/completions", data=big, headers=suite.headers()
    ) as r:
        error = (await r.json())["error"]
        assert r.status == 413
    assert error["code"] == "request_too_large"
    assert "message bus" in error["message"]


async def test_no_worker_running_is_503_in_under_a_second(gateway_only: Suite) -> None:
    started = time.monotonic()
    async with gateway_only.http.post(
        f"{gateway_only.base_url}/v1/chat/completions",
        json={"model": "mock", "messages": MESSAGES},
        headers=gateway_only.headers(),
    ) as response:
        elapsed = time.monotonic() - started
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert (await response.json())["error"]["code"] == "no_worker_available"
    assert elapsed < 1.0


async def test_client_disconnect_cancels_the_answer_and_bills_partial_usage(suite: Suite) -> None:
    stream = await suite.client.chat.completions.create(model="mock-slow", messages=MESSAGES, stream=True)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    await stream.close()
    [event] = await usage_events(suite, expect=1)
    assert event.status == "cancelled"
    assert event.usage.basis == "partial"
    # Cancelled after the first chunk of a slow answer: far less than the whole answer ran.
    assert event.duration_ms < SLOW_TOTAL_MS / 2


SLOW_TOTAL_MS = len(expected_text().split(" ")) * 200


async def test_an_answer_past_the_request_timeout_is_504(suite: Suite) -> None:
    runner, base_url = await start_gateway(suite.nats_url, request_timeout_s=0.5)
    try:
        started = time.monotonic()
        async with suite.http.post(
            f"{base_url}/v1/chat/completions",
            json={"model": "mock-stall", "messages": MESSAGES},
            headers=suite.headers(),
        ) as response:
            error = (await response.json())["error"]
            assert response.status == 504
        elapsed = time.monotonic() - started
    finally:
        await runner.cleanup()
    assert error["code"] == "timeout"
    assert 0.5 <= elapsed < 1.5
    # The gateway gave up, so the worker stopped the provider call instead of finishing it.
    [event] = await usage_events(suite, expect=1)
    assert event.status == "cancelled"


async def test_gateway_and_worker_announce_their_start_on_the_events_stream(suite: Suite) -> None:
    js = suite.nc.jetstream()
    info = await js.stream_info(EVENTS.name)
    started = set()
    for seq in range(1, info.state.messages + 1):
        msg = await js.get_msg(EVENTS.name, seq)
        if msg.subject == SERVICE_STARTED:
            started.add(ServiceLifecycle.decode(msg.data or b"").service)
    assert started == {"gateway", "chat-worker"}


async def gateway_series(suite: Suite) -> dict[str, float]:
    async with suite.http.get(f"{suite.ops_url}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("lobe_gateway_")
    }


async def test_gateway_metrics_count_answers_by_status_and_time_the_first_token(suite: Suite) -> None:
    ok = 'lobe_gateway_chat_requests_total{status="200",stream="true"}'
    not_found = 'lobe_gateway_chat_requests_total{status="404",stream="false"}'
    before = await gateway_series(suite)
    stream = await suite.client.chat.completions.create(model="mock", messages=MESSAGES, stream=True)
    async for _ in stream:
        pass
    with pytest.raises(openai.NotFoundError):
        await suite.client.chat.completions.create(model="gpt-nope", messages=MESSAGES)
    after = await gateway_series(suite)
    assert after[ok] - before.get(ok, 0) == 1
    assert after[not_found] - before.get(not_found, 0) == 1
    assert after["lobe_gateway_ttft_seconds_count"] - before.get("lobe_gateway_ttft_seconds_count", 0) == 1
    assert after["lobe_gateway_chat_in_flight"] == 0


async def test_gateway_serves_metrics_on_its_ops_port_and_not_on_the_public_api(suite: Suite) -> None:
    async with suite.http.get(f"{suite.base_url}/metrics") as public:
        assert public.status == 404
    async with suite.http.get(f"{suite.ops_url}/metrics") as ops:
        assert ops.status == 200
        assert "lobe_gateway_chat_in_flight" in await ops.text()
    for url in (f"{suite.base_url}/api/ready", f"{suite.ops_url}/health/ready"):
        async with suite.http.get(url) as ready:
            assert ready.status == 200, url


async def test_usage_is_recorded_before_the_terminal_frame(suite: Suite) -> None:
    seen: list[str] = []

    async def spy(msg: Msg) -> None:
        if msg.subject == USAGE_RECORDED:
            seen.append("usage")
        elif msg.subject.startswith("chat.reply.") and b'"type":"done"' in msg.data:
            seen.append("done")

    sub = await suite.nc.subscribe(">", cb=spy)
    await suite.client.chat.completions.create(model="mock", messages=MESSAGES)
    await suite.nc.flush()
    await sub.unsubscribe()
    # One connection publishes both, so the bus keeps their order: a worker killed between the
    # two leaves an error for the client, never an answer that was not billed.
    assert seen == ["usage", "done"]


async def test_an_error_answer_carries_its_request_id_as_a_success_does(gateway_only: Suite) -> None:
    """The id is the ledger's key: a client (or support) can trace a failed request too."""
    async with gateway_only.http.post(
        f"{gateway_only.base_url}/v1/chat/completions",
        json={"model": "mock", "messages": MESSAGES},
        headers=gateway_only.headers(),
    ) as response:
        body = await response.json()
    assert (response.status, body["error"]["code"]) == (503, "no_worker_available")
    assert len(response.headers["X-Request-Id"]) == 32
