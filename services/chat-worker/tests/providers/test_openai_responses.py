"""OpenAI's Responses API upstream (`responses: native`): OpenAI's Responses SSE, replayed in small
random chunks over real HTTP, assembles to the sidecar's totals; the chat request the gateway made
goes upstream as a Responses request; a chat request, or a deployment not marked native, still
goes to the chat API."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from lobe.chat_worker.deployments import Deployment
from lobe.chat_worker.providers.openai_responses import responses_body
from lobe.devtools.fake_upstream import FakeUpstream, Reply
from lobe.devtools.provider_fixtures import fixture_files, load
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.chat import TokenUsage

from .support import Assembled, deployment, request, serve

NATIVE = {"responses": "native"}


async def native(
    upstream: FakeUpstream,
    session: aiohttp.ClientSession,
    reply: Reply,
    body: ChatCompletionRequest | None = None,
) -> Assembled:
    """`reply` through an `openai` deployment marked native, for a Responses request."""
    return await serve(
        upstream, session, reply, "openai", base_path="/v1", body=body, endpoint="responses", **NATIVE
    )


def as_usage(raw: dict[str, Any]) -> TokenUsage:
    return TokenUsage(
        prompt_tokens=raw["input_tokens"],
        completion_tokens=raw["output_tokens"],
        cached_tokens=raw["input_tokens_details"]["cached_tokens"],
        reasoning_tokens=raw["output_tokens_details"]["reasoning_tokens"],
    )


@pytest.mark.parametrize("name", fixture_files("openai_responses"))
@pytest.mark.parametrize("seed", [1, 2])
async def test_a_responses_stream_assembles_to_the_sidecar_totals(
    name: str, seed: int, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    transcript = load(name)
    got = await native(upstream, session, transcript.reply(seed=seed, max_chunk=9))

    expected = transcript.expected
    assert got.error is None
    assert upstream.last.path == "/v1/responses"
    assert (got.text, got.reasoning) == (expected["text"], expected["reasoning_text"])
    assert [(c["id"], c["name"], c["arguments"]) for c in got.tool_calls()] == [
        (c["id"], c["name"], c["arguments"]) for c in expected["tool_calls"]
    ]
    assert got.finished is not None
    assert (got.finished.reason, got.finished.model) == (expected["finish_reason"], expected["model"])
    assert got.usage == as_usage(expected["usage"])
    assert got.usage.basis == "provider"


async def test_the_request_goes_upstream_as_a_streamed_unstored_responses_request(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    body = request(
        messages=[
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        tools=[tool],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=64,
        reasoning_effort="low",
        response_format={"type": "json_object"},
        user="u-1",
    )
    await native(upstream, session, load("openai_responses/responses_stream_function_call.sse").reply(), body)
    sent = upstream.last
    key = deployment("openai", upstream.url).api_key()
    assert key is not None
    assert sent.headers["authorization"] == f"Bearer {key.get_secret_value()}"  # the chat API's auth
    assert sent.json == {
        "model": "upstream-model",
        "input": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Weather?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AA==", "detail": "auto"},
                ],
            },
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        ],
        "stream": True,
        "store": False,
        "max_output_tokens": 64,
        "user": "u-1",
        "text": {"format": {"type": "json_object"}},
        "reasoning": {"effort": "low"},
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
        "tool_choice": {"type": "function", "name": "get_weather"},
    }


@pytest.mark.parametrize(("endpoint", "fields"), [("chat", NATIVE), ("responses", {})])
async def test_a_chat_request_or_an_unmarked_deployment_uses_the_chat_api(
    endpoint: Any, fields: dict[str, str], upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    reply = load("openai/chat_stream_text.sse").reply()
    got = await serve(upstream, session, reply, "openai", base_path="/v1", endpoint=endpoint, **fields)
    assert got.error is None
    assert upstream.last.path == "/v1/chat/completions"


async def test_a_stream_cut_before_response_completed_is_an_error_not_an_answer(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    body = load("openai_responses/responses_stream_reasoning_text.sse").body
    cut = body[: body.index(b"event: response.completed")]
    got = await native(upstream, session, Reply(cut, content_type="text/event-stream"))
    assert got.finished is None
    assert got.error is not None
    assert (got.error.code, got.error.started) == ("upstream_truncated", True)


async def test_response_failed_is_the_providers_error(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    failed = (
        b'event: response.created\ndata: {"type":"response.created","sequence_number":0,"response":{"model":"m"}}\n\n'
        b'event: response.failed\ndata: {"type":"response.failed","sequence_number":1,"response":'
        b'{"status":"failed","error":{"code":"server_error","message":"The model failed."}}}\n\n'
    )
    got = await native(upstream, session, Reply(failed, content_type="text/event-stream"))
    assert got.finished is None
    assert got.error is not None
    assert got.error.message == "The model failed."
    assert got.error.started is False


@pytest.mark.parametrize("provider", ["anthropic", "gemini", "azure_openai", "ollama", "mock"])
def test_native_responses_is_refused_for_a_provider_without_an_adapter(provider: str) -> None:
    with pytest.raises(ValidationError, match="responses: native"):
        Deployment.model_validate({"name": "d", "provider": provider, "base_url": "http://x", **NATIVE})


def test_a_text_only_request_carries_no_unset_options() -> None:
    assert responses_body(request(), "m", forward_user=False) == {
        "model": "m",
        "input": [{"role": "user", "content": "Hi"}],
        "stream": True,
        "store": False,
    }
