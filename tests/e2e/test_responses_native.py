"""POST /v1/responses on a deployment marked `responses: native`, with the official `openai` SDK:
the worker calls the fake upstream's own `/v1/responses` (OpenAI's Responses SSE, a transcript
reconstructed from the documented format), so the reasoning summary and the usage the client gets
are the provider's (docs/responses.md, "OpenAI's own Responses API")."""

from __future__ import annotations

import json

from lobe.chat_worker.deployments import Deployment, ModelCatalog, RoutedModel
from lobe.devtools.fake_upstream import FakeUpstream
from lobe.devtools.provider_fixtures import load

from .conftest import Suite, start_worker
from .test_chat_path import usage_events
from .test_responses import sdk

MODEL = "gpt-native"


def native_catalog(upstream: FakeUpstream) -> ModelCatalog:
    deployment = Deployment(
        name="openai-native",
        provider="openai",
        base_url=f"{upstream.url}/v1",
        model="o4-mini",
        responses="native",
    )
    return ModelCatalog(
        models=[RoutedModel(name=MODEL, deployments=[deployment], serves=["chat", "responses"])]
    )


async def test_a_native_responses_stream_carries_the_providers_reasoning_and_usage(
    gateway_only: Suite, upstream: FakeUpstream
) -> None:
    transcript = load("openai_responses/responses_stream_reasoning_text.sse")
    expected = transcript.expected
    upstream.push(transcript.reply(seed=3, max_chunk=64))
    worker = await start_worker(gateway_only.nats_url, native_catalog(upstream))
    try:
        stream = await sdk(gateway_only).responses.create(
            model=MODEL, input="What is the capital of France?", reasoning={"effort": "medium"}, stream=True
        )
        events = [event async for event in stream]
    finally:
        await worker.stop()

    sent = upstream.last
    assert sent.path == "/v1/responses"
    assert (sent.json["model"], sent.json["stream"], sent.json["store"]) == ("o4-mini", True, False)
    assert sent.json["reasoning"] == {"effort": "medium"}
    assert sent.json["input"] == [{"role": "user", "content": "What is the capital of France?"}]

    kinds = [e.type for e in events]
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    reasoning = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    assert (text, reasoning) == (expected["text"], expected["reasoning_text"])
    response = events[-1].response
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.output_text == expected["text"]
    usage = response.usage
    assert usage is not None
    provider_usage = expected["usage"]
    assert (usage.input_tokens, usage.output_tokens) == (
        provider_usage["input_tokens"],
        provider_usage["output_tokens"],
    )
    assert (
        usage.output_tokens_details.reasoning_tokens
        == provider_usage["output_tokens_details"]["reasoning_tokens"]
    )
    [event] = await usage_events(gateway_only, expect=1)
    assert (event.kind, event.provider, event.status) == ("response", "openai", "ok")
    assert event.usage.reasoning_tokens == provider_usage["output_tokens_details"]["reasoning_tokens"]


async def test_a_native_function_call_is_a_function_call_item_and_chat_still_uses_chat(
    gateway_only: Suite, upstream: FakeUpstream
) -> None:
    transcript = load("openai_responses/responses_stream_function_call.sse")
    [call] = transcript.expected["tool_calls"]
    upstream.push(transcript.reply(seed=5))
    upstream.push(load("openai/chat_stream_text.sse").reply())
    worker = await start_worker(gateway_only.nats_url, native_catalog(upstream))
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    try:
        client = sdk(gateway_only)
        response = await client.responses.create(model=MODEL, input="Weather in Paris?", tools=[tool])
        chat = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    finally:
        await worker.stop()

    assert [r.path for r in upstream.requests] == ["/v1/responses", "/v1/chat/completions"]
    assert upstream.requests[0].json["tools"] == [tool]
    [item] = response.output
    assert item.type == "function_call"
    assert (item.call_id, item.name, json.loads(item.arguments)) == (
        call["id"],
        call["name"],
        json.loads(call["arguments"]),
    )
    assert chat.choices[0].message.content
