"""Fallbacks beyond the deployment order (acceptance, issue 12): to another model across providers
(the request translated from OpenAI's shape to Anthropic's and back), and to a larger-context model
when the prompt does not fit, whatever words the provider uses to say so. The client is told who
answered and after how many attempts, in the headers and in the usage event."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from lobe.chat_worker.deployments import Deployment, ModelCatalog, ProviderKind, RoutedModel
from lobe.chat_worker.providers.errors import CLIENT_MESSAGES
from lobe.devtools.fake_upstream import FakeUpstream, Reply
from lobe.devtools.provider_fixtures import load
from lobe.devtools.suite import upstreams as fake_upstreams

from .conftest import Suite, start_worker
from .providers import ROUTES
from .test_chat_path import usage_events
from .transcripts import expected_answer

OPENAI_TEXT = load("openai/chat_stream_text.sse")
ANTHROPIC_TEXT = load("anthropic/messages_stream_text.sse")
OVERLOADED = Reply(
    b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}', 529, "application/json"
)
BROKEN = Reply(
    b'{"error": {"message": "upstream exploded", "type": "server_error"}}', 500, "application/json"
)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CHAT = {
    "messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Hello there."},
    ],
    "max_tokens": 300,
    "temperature": 1.5,
    "tools": [WEATHER_TOOL],
}

# Context-window errors as each provider sends them (HTTP 400 bodies, documented shapes).
CONTEXT_ERRORS: dict[str, tuple[ProviderKind, bytes]] = {
    "openai": (
        "openai",
        b'{"error": {"message": "This model\'s maximum context length is 128000 tokens. However, your messages '
        b'resulted in 130412 tokens. Please reduce the length of the messages.", "type": "invalid_request_error", '
        b'"param": "messages", "code": "context_length_exceeded"}}',
    ),
    "anthropic": (
        "anthropic",
        b'{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208310 tokens > '
        b'200000 maximum"}}',
    ),
    "gemini": (
        "gemini",
        b'{"error": {"code": 400, "message": "The input token count (1048577) exceeds the maximum number of tokens '
        b'allowed (1048576).", "status": "INVALID_ARGUMENT"}}',
    ),
    "vllm": (
        "openai_compatible",
        b'{"object": "error", "message": "This model\'s maximum context length is 4096 tokens. However, you '
        b"requested 5000 tokens (4000 in the messages, 1000 in the completion). Please reduce the length of the "
        b'messages or completion.", "type": "BadRequestError", "param": null, "code": 400}',
    ),
    "mistral": (
        "openai_compatible",
        b'{"object": "error", "message": "Prompt contains 40000 tokens and 0 draft tokens, too large for model '
        b'with 32768 maximum context length", "type": "invalid_request_error", "param": null, "code": null}',
    ),
}


@pytest.fixture
async def two_upstreams() -> AsyncIterator[list[FakeUpstream]]:
    async with fake_upstreams(None, None) as started:
        yield started


def deployment(name: str, kind: ProviderKind, upstream: FakeUpstream, model: str) -> Deployment:
    return Deployment(name=name, provider=kind, base_url=upstream.url + ROUTES[kind].base_suffix, model=model)


async def post(suite: Suite, model: str, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    async with suite.http.post(
        f"{suite.base_url}/v1/chat/completions", json={**body, "model": model}, headers=suite.headers()
    ) as response:
        return response.status, dict(response.headers), await response.json()


async def test_openai_falls_back_to_anthropic_with_the_request_translated(
    gateway_only: Suite, monkeypatch: pytest.MonkeyPatch, two_upstreams: list[FakeUpstream]
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-anthropic")
    openai_upstream, anthropic_upstream = two_upstreams
    openai_upstream.default, anthropic_upstream.default = BROKEN, ANTHROPIC_TEXT.reply()
    catalog = ModelCatalog(
        models=[
            RoutedModel(
                name="gpt-4o",
                deployments=[deployment("openai-main", "openai", openai_upstream, "gpt-4o-2024-08-06")],
                fallbacks=["claude"],
            ),
            RoutedModel(
                name="claude",
                deployments=[
                    deployment("anthropic-main", "anthropic", anthropic_upstream, "claude-sonnet-4")
                ],
            ),
        ]
    )
    worker = await start_worker(gateway_only.nats_url, models=catalog)
    try:
        status, headers, answer = await post(gateway_only, "gpt-4o", CHAT)
    finally:
        await worker.stop()
    assert status == 200, answer
    assert answer["choices"][0]["message"]["content"] == expected_answer(ANTHROPIC_TEXT).text
    assert (headers["X-Lobe-Deployment"], headers["X-Lobe-Provider"], headers["X-Lobe-Attempts"]) == (
        "anthropic-main",
        "anthropic",
        "2",
    )
    sent = anthropic_upstream.last
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "test-key-anthropic"
    assert sent.json["model"] == "claude-sonnet-4"
    assert sent.json["system"] == "Answer briefly."
    assert sent.json["messages"] == [{"role": "user", "content": "Hello there."}]
    assert (sent.json["max_tokens"], sent.json["temperature"]) == (300, 1.0)  # Anthropic's range is 0..1
    assert sent.json["tools"][0]["input_schema"] == WEATHER_TOOL["function"]["parameters"]  # type: ignore[index]
    [event] = await usage_events(gateway_only, expect=1)
    assert (event.model, event.provider, event.deployment, event.attempts) == (
        "gpt-4o",
        "anthropic",
        "anthropic-main",
        2,
    )


async def test_anthropic_falls_back_to_openai_with_the_request_translated(
    gateway_only: Suite, monkeypatch: pytest.MonkeyPatch, two_upstreams: list[FakeUpstream]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key-openai")
    anthropic_upstream, openai_upstream = two_upstreams
    anthropic_upstream.default, openai_upstream.default = OVERLOADED, OPENAI_TEXT.reply()
    catalog = ModelCatalog(
        models=[
            RoutedModel(
                name="claude",
                deployments=[
                    deployment("anthropic-main", "anthropic", anthropic_upstream, "claude-sonnet-4")
                ],
                fallbacks=["gpt-4o"],
            ),
            RoutedModel(
                name="gpt-4o", deployments=[deployment("openai-main", "openai", openai_upstream, "")]
            ),
        ]
    )
    worker = await start_worker(gateway_only.nats_url, models=catalog)
    try:
        status, headers, answer = await post(gateway_only, "claude", {**CHAT, "stream": False})
    finally:
        await worker.stop()
    assert status == 200, answer
    assert answer["choices"][0]["message"]["content"] == expected_answer(OPENAI_TEXT).text
    assert (headers["X-Lobe-Deployment"], headers["X-Lobe-Provider"], headers["X-Lobe-Attempts"]) == (
        "openai-main",
        "openai",
        "2",
    )
    sent = openai_upstream.last
    assert (sent.path, sent.headers["authorization"]) == ("/v1/chat/completions", "Bearer test-key-openai")
    assert sent.json["model"] == "gpt-4o"  # the fallback model's own name: its deployment names none
    assert sent.json["messages"] == CHAT["messages"]
    assert (sent.json["max_completion_tokens"], sent.json["temperature"]) == (300, 1.5)
    assert sent.json["tools"] == [WEATHER_TOOL]


@pytest.mark.parametrize("provider", sorted(CONTEXT_ERRORS))
async def test_a_context_window_error_moves_the_request_to_the_larger_context_model(
    gateway_only: Suite,
    monkeypatch: pytest.MonkeyPatch,
    two_upstreams: list[FakeUpstream],
    provider: str,
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "test-key-gemini")
    kind, error = CONTEXT_ERRORS[provider]
    small_upstream, large_upstream = two_upstreams
    small_upstream.default = Reply(error, 400, "application/json")
    large_upstream.default = OPENAI_TEXT.reply()
    catalog = ModelCatalog(
        models=[
            RoutedModel(
                name="small",
                deployments=[
                    deployment("small-a", kind, small_upstream, "upstream-model"),
                    deployment("small-b", kind, small_upstream, "upstream-model"),
                ],
                fallbacks=["other"],
                context_fallback="large",
            ),
            RoutedModel(name="other", deployments=[Deployment(name="other", provider="mock")]),
            RoutedModel(name="large", deployments=[deployment("large", "openai", large_upstream, "big")]),
        ]
    )
    worker = await start_worker(gateway_only.nats_url, models=catalog)
    try:
        status, headers, answer = await post(gateway_only, "small", {"messages": CHAT["messages"]})
    finally:
        await worker.stop()
    assert status == 200, answer
    # Straight to the larger model: not the same-sized sibling deployment, not the plain fallback.
    assert (headers["X-Lobe-Deployment"], headers["X-Lobe-Attempts"]) == ("large", "2")
    assert len(small_upstream.requests) == 1
    assert answer["choices"][0]["message"]["content"] == expected_answer(OPENAI_TEXT).text


async def test_a_context_window_error_without_a_larger_model_is_the_clients_400(
    gateway_only: Suite, two_upstreams: list[FakeUpstream]
) -> None:
    kind, error = CONTEXT_ERRORS["anthropic"]
    small_upstream, _ = two_upstreams
    small_upstream.default = Reply(error, 400, "application/json")
    catalog = ModelCatalog(
        models=[RoutedModel(name="small", deployments=[deployment("small-a", kind, small_upstream, "m")])]
    )
    worker = await start_worker(gateway_only.nats_url, models=catalog)
    try:
        status, headers, answer = await post(gateway_only, "small", {"messages": CHAT["messages"]})
    finally:
        await worker.stop()
    assert status == 400
    assert answer["error"]["code"] == "context_length_exceeded"
    # A fixed message: the provider's words stay in the worker's log (providers/errors.py).
    assert answer["error"]["message"] == CLIENT_MESSAGES["context_length_exceeded"]
    assert answer["error"]["message"] != json.loads(error)["error"]["message"]
    assert (headers["X-Lobe-Deployment"], headers["X-Lobe-Attempts"]) == ("small-a", "1")


async def test_the_route_headers_come_with_the_first_byte_of_a_stream(gateway_only: Suite) -> None:
    catalog = ModelCatalog(
        models=[RoutedModel(name="streamed", deployments=[Deployment(name="mock-a", provider="mock")])]
    )
    worker = await start_worker(gateway_only.nats_url, models=catalog)
    try:
        async with gateway_only.http.post(
            f"{gateway_only.base_url}/v1/chat/completions",
            json={"model": "streamed", "stream": True, "messages": CHAT["messages"]},
            headers=gateway_only.headers(),
        ) as response:
            headers = dict(response.headers)  # read before any of the body
            first = await response.content.readline()
            await response.read()
    finally:
        await worker.stop()
    assert first.startswith(b"data: ")
    assert (headers["X-Lobe-Deployment"], headers["X-Lobe-Provider"], headers["X-Lobe-Attempts"]) == (
        "mock-a",
        "mock",
        "1",
    )
