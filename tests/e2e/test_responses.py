"""POST /v1/responses end to end with the official `openai` SDK: the request translated to a chat
request at the gateway, run by a worker (the mock, or a fake upstream replaying each provider's
recorded chat transcript), and rendered as Responses events or the `response` object; the usage
recorded once, as kind `response`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import nats
import openai
import pytest
from openai import AsyncOpenAI
from openai.types.responses import Response

from lobe.billing.admin import admin_session
from lobe.billing.plans import Override
from lobe.billing.service import BillingService
from lobe.chat_worker.deployments import Deployment, ModelCatalog, RoutedModel, with_builtin
from lobe.chat_worker.providers.mock import mock_answer
from lobe.devtools.fake_upstream import FakeUpstream
from lobe.devtools.provider_fixtures import load
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.token_ceiling import prompt_token_ceiling

from .conftest import API_KEY, Suite, billing_settings, start_gateway, start_worker
from .providers import kind_of, public_model, routed_worker
from .test_chat_path import usage_events
from .test_embeddings import ledger_rows
from .test_providers_via_sdk import replay
from .transcripts import Expected, expected_answer

# The stream of a text answer, in OpenAI's order.
TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def mock_text(messages: list[dict[str, Any]]) -> str:
    """What the mock answers this chat conversation (its digest covers every message)."""
    return "".join(mock_answer(ChatCompletionRequest.model_validate({"model": "mock", "messages": messages})))


@pytest.fixture
async def routed(gateway_only: Suite) -> AsyncIterator[Suite]:
    """The built-in mock (it serves responses) and a mock-backed model that serves chat only."""
    chat_only = RoutedModel(name="chat-only", deployments=[Deployment(name="chat-only", provider="mock")])
    worker = await start_worker(gateway_only.nats_url, with_builtin(ModelCatalog(models=[chat_only])))
    yield gateway_only
    await worker.stop()


def sdk(suite: Suite) -> AsyncOpenAI:
    return sdk_at(suite.base_url)


async def test_a_stream_is_openais_events_ending_with_completed_and_usage(routed: Suite) -> None:
    stream = await sdk(routed).responses.create(
        model="mock", instructions="Be brief.", input="Hello there", stream=True
    )
    events = [event async for event in stream]

    expected = mock_text(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
    )
    kinds = [e.type for e in events]
    assert [k for i, k in enumerate(kinds) if i == 0 or k != kinds[i - 1]] == TEXT_EVENTS
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == expected
    completed = events[-1]
    assert completed.type == "response.completed"
    response = completed.response
    assert (response.status, response.model, response.instructions) == ("completed", "mock", "Be brief.")
    assert response.output_text == expected
    assert response.usage is not None
    assert response.usage.output_tokens == len(expected.split(" "))  # the mock's token is a word
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert events[0].response.id == response.id  # one response, created to completed

    [usage] = await usage_events(routed, expect=1)
    assert (usage.kind, usage.status, usage.stream, usage.model) == ("response", "ok", True, "mock")
    assert (usage.usage.prompt_tokens, usage.usage.completion_tokens) == (
        response.usage.input_tokens,
        response.usage.output_tokens,
    )


async def test_a_non_streamed_response_is_the_response_object(routed: Suite) -> None:
    raw = await sdk(routed).responses.with_raw_response.create(model="mock", input="What is 2 + 2?")
    response = raw.parse()

    assert Response.model_validate(json.loads(raw.content))  # every field the SDK's type requires
    assert response.id == f"resp_{raw.headers['x-request-id']}"
    assert (response.object, response.status, response.store) == ("response", "completed", False)
    assert response.output_text == mock_text([{"role": "user", "content": "What is 2 + 2?"}])
    [message] = response.output
    assert (message.type, message.role, message.status) == ("message", "assistant", "completed")
    assert response.usage is not None
    assert response.usage.output_tokens > 0
    [usage] = await usage_events(routed, expect=1)
    assert (usage.kind, usage.stream, usage.request_id) == ("response", False, raw.headers["x-request-id"])


async def test_conversation_items_reach_the_model_as_chat_messages(routed: Suite) -> None:
    items: list[Any] = [
        {"role": "developer", "content": "Use the tools."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},  # dropped: no chat provider takes it back
        {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "18C, sunny"},
        {"role": "assistant", "content": [{"type": "output_text", "text": "It is 18C.", "annotations": []}]},
        {"role": "user", "content": "And tomorrow?"},
    ]
    response = await sdk(routed).responses.create(model="mock", input=items)

    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
    }
    assert response.output_text == mock_text(
        [
            {"role": "developer", "content": "Use the tools."},
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
            {"role": "assistant", "content": "It is 18C."},
            {"role": "user", "content": "And tomorrow?"},
        ]
    )


async def test_an_answer_cut_by_max_output_tokens_ends_incomplete(routed: Suite) -> None:
    words = " ".join(f"w{i}" for i in range(30))  # the mock echoes them: past 16 tokens
    stream = await sdk(routed).responses.create(model="mock", input=words, max_output_tokens=16, stream=True)
    events = [event async for event in stream]

    last = events[-1]
    assert last.type == "response.incomplete"
    assert last.response.incomplete_details is not None
    assert last.response.incomplete_details.reason == "max_output_tokens"
    assert last.response.usage is not None
    assert last.response.usage.output_tokens == 16


async def error_of(suite: Suite, body: Any) -> tuple[int, dict[str, Any]]:
    async with suite.http.post(f"{suite.base_url}/v1/responses", json=body, headers=suite.headers()) as r:
        return r.status, (await r.json())["error"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "mock"}, "input"),
        ({"model": "mock", "input": []}, "input"),
        ({"model": "mock", "input": 42}, "input"),
        ({"model": "mock", "input": [{"role": "user", "content": [{"type": "input_text"}]}]}, "input"),
        ({"model": "mock", "input": [{"type": "file_search_call", "id": "fs_1"}]}, "input"),
        ({"model": "mock", "input": [{"type": "reasoning", "summary": []}]}, "input"),
        ({"model": "mock", "input": "x", "previous_response_id": "resp_123"}, "previous_response_id"),
        ({"model": "mock", "input": "x", "store": True}, "store"),
        ({"model": "mock", "input": "x", "background": True}, "background"),
        ({"model": "mock", "input": "x", "max_output_tokens": 15}, "max_output_tokens"),
        ({"model": "mock", "input": "x", "temperature": 3}, "temperature"),
        ({"model": "mock", "input": "x", "stream": "yes"}, "stream"),
        ({"model": "mock", "input": "x", "tools": [{"type": "web_search"}]}, "tools.0.type"),
    ],
)
async def test_bad_input_is_openais_400_naming_the_param(routed: Suite, body: Any, param: str) -> None:
    status, error = await error_of(routed, body)
    assert status == 400
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert await usage_events(routed, expect=0, timeout_s=0) == []  # refused before any work


async def test_previous_response_id_is_refused_saying_why(routed: Suite) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk(routed).responses.create(model="mock", input="x", previous_response_id="resp_1")
    assert "not stored" in caught.value.message


async def test_a_model_not_serving_responses_and_an_unknown_model_are_404s(routed: Suite) -> None:
    with pytest.raises(openai.NotFoundError) as chat_only:
        await sdk(routed).responses.create(model="chat-only", input="hi")
    assert chat_only.value.code == "model_not_supported"
    with pytest.raises(openai.NotFoundError) as unknown:
        await sdk(routed).responses.create(model="no-such-model", input="hi", stream=True)
    assert unknown.value.code == "model_not_found"
    # The chat-only model still chats.
    chat = await sdk(routed).chat.completions.create(
        model="chat-only", messages=[{"role": "user", "content": "hi"}]
    )
    assert chat.choices[0].message.content


# Every provider's recorded chat wire, answered through the Responses API.
TRANSCRIPTS = [
    "openai/chat_stream_text.sse",
    "openai/chat_stream_parallel_tool_calls.sse",
    "anthropic/messages_stream_text_and_tool_use.sse",
    "gemini/stream_text_thoughts_usage.sse",
    "gemini/stream_thinking_function_call.sse",
    "ollama/api_chat_stream_tools.ndjson",
    "openai_compatible/deepseek_stream_reasoning_content.sse",
    "openai_compatible/azure_chat_completion.json",
]


@pytest.fixture(autouse=True)
def _provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "AZURE_OPENAI_API_KEY"):
        monkeypatch.setenv(env, f"test-key-{env.split('_')[0].lower()}")


def function_tools(expected: Expected) -> list[Any] | openai.NotGiven:
    names = dict.fromkeys(name for name, _ in expected.tool_calls)
    return [
        {"type": "function", "name": n, "parameters": {"type": "object"}} for n in names
    ] or openai.NOT_GIVEN


def assert_output(response: Response, expected: Expected) -> None:
    assert response.output_text == expected.text
    reasoning = [
        part.text for item in response.output if item.type == "reasoning" for part in item.content or ()
    ]
    assert "".join(reasoning) == expected.reasoning
    calls = [
        (item.name, json.loads(item.arguments)) for item in response.output if item.type == "function_call"
    ]
    assert calls == expected.tool_calls
    assert all(item.call_id for item in response.output if item.type == "function_call")
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (
        expected.prompt_tokens,
        expected.completion_tokens,
    )
    assert response.usage.input_tokens_details.cached_tokens == expected.cached_tokens


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "non-stream"])
@pytest.mark.parametrize("name", TRANSCRIPTS)
async def test_each_providers_chat_wire_answers_as_a_response(
    name: str, streaming: bool, gateway_only: Suite, upstream: FakeUpstream
) -> None:
    transcript = load(name)
    expected = expected_answer(transcript)
    kind = kind_of(name)
    replay(upstream, transcript, seed=len(name))
    async with routed_worker(gateway_only.nats_url, kind, upstream, serves=["chat", "responses"]):
        client = sdk(gateway_only)
        tools = function_tools(expected)
        if streaming:
            stream = await client.responses.create(
                model=public_model(kind), input="Answer as recorded.", tools=tools, stream=True
            )
            events = [event async for event in stream]
            assert events[-1].type in ("response.completed", "response.incomplete")
            response = events[-1].response
            deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
            assert deltas == expected.text
        else:
            response = await client.responses.create(
                model=public_model(kind), input="Answer as recorded.", tools=tools
            )

    assert_output(response, expected)
    [usage] = await usage_events(gateway_only, expect=1)
    assert (usage.kind, usage.provider, usage.status) == ("response", kind, "ok")


MID_STREAM_ERROR = "anthropic/messages_stream_error_overloaded.sse"


async def test_an_error_after_the_first_byte_is_an_error_event_then_response_failed(
    gateway_only: Suite, upstream: FakeUpstream
) -> None:
    transcript = load(MID_STREAM_ERROR)
    replay(upstream, transcript, seed=1)
    async with routed_worker(gateway_only.nats_url, "anthropic", upstream, serves=["chat", "responses"]):
        stream = await sdk(gateway_only).responses.create(
            model=public_model("anthropic"), input="hi", stream=True
        )
        events = [event async for event in stream]

    kinds = [e.type for e in events]
    assert "response.output_text.delta" in kinds  # output had begun
    assert kinds[-2:] == ["error", "response.failed"]
    assert "response.completed" not in kinds
    failed = events[-1].response
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.message == events[-2].message


# Billing, the budget and the response cache together.


@pytest.fixture
async def billed(nats_url: str, billing_db: str, redis_url: str) -> AsyncIterator[Suite]:
    """A gateway with budget admission and the cache on, the built-in mock, billing on its own database."""
    async with BillingService(billing_settings(nats_url, billing_db, "e2e-admin-token")) as billing:
        assert billing.admin is not None
        await billing.admin.create_user("alice", plan="basic")
        worker = await start_worker(nats_url, with_builtin(ModelCatalog(models=[])))
        runner, base_url = await start_gateway(
            nats_url, billing_enabled=True, cache_enabled=True, cache_redis_url=redis_url
        )
        nc = await nats.connect(nats_url)
        async with aiohttp.ClientSession() as http:
            yield Suite(base_url, nats_url, nc, sdk_at(base_url), http)
        await nc.close()
        await runner.cleanup()
        await worker.stop()


def sdk_at(base_url: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{base_url}/v1", api_key=API_KEY, max_retries=0)


async def test_one_ledger_row_of_kind_response_priced_as_quoted(billed: Suite, billing_db: str) -> None:
    stream = await billed.client.responses.create(model="mock", input="Price this.", stream=True)
    events = [event async for event in stream]
    response = events[-1].response
    assert response.usage is not None
    request_id = response.id.removeprefix("resp_")

    [row] = await ledger_rows(billing_db, [request_id])
    assert (row["kind"], row["status"]) == ("response", "ok")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        response.usage.input_tokens,
        response.usage.output_tokens,
    )
    quoted = Decimal(str((response.usage.model_extra or {})["cost"]))  # as on a chat completion's usage
    assert quoted > 0
    assert abs(quoted - Decimal(row["cost_usd"])) < Decimal("0.000000001")


async def test_the_budget_holds_the_prompt_ceiling_plus_max_output_tokens(
    billed: Suite, billing_db: str
) -> None:
    text = "Within budget?"
    ceiling = prompt_token_ceiling(
        ChatCompletionRequest.model_validate(
            {"model": "mock", "messages": [{"role": "user", "content": text}]}
        )
    )
    async with admin_session(billing_db, billed.nats_url) as admin:
        await admin.set_limits("alice", Override(tokens=ceiling + 16))

    with pytest.raises(openai.RateLimitError) as refused:  # one output token past the limit
        await billed.client.responses.create(model="mock", input=text, max_output_tokens=17)
    assert refused.value.code == "insufficient_quota"
    assert "tokens limit" in refused.value.message
    admitted = await billed.client.responses.create(model="mock", input=text, max_output_tokens=16)
    assert admitted.status in ("completed", "incomplete")


async def test_a_cached_response_is_a_cache_hit_of_kind_response_and_never_a_chat_answer(
    billed: Suite, billing_db: str
) -> None:
    asked: dict[str, Any] = {"model": "mock", "input": "Say it twice.", "temperature": 0}
    first = await billed.client.responses.with_raw_response.create(**asked)
    second = await billed.client.responses.with_raw_response.create(**asked, stream=True)
    chat = await billed.client.chat.completions.with_raw_response.create(
        model="mock", messages=[{"role": "user", "content": "Say it twice."}], temperature=0
    )
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert chat.headers["x-cache"] == "miss"  # the Responses answer is in a namespace of its own
    events = [event async for event in second.parse()]
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == first.parse().output_text

    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    rows = {row["request_id"]: row for row in await ledger_rows(billing_db, ids)}
    assert (rows[ids[0]]["kind"], rows[ids[0]]["status"]) == ("response", "ok")
    assert (rows[ids[1]]["kind"], rows[ids[1]]["status"]) == ("response", "cache_hit")
