"""Every Gemini transcript replayed in random small chunks must assemble to the sidecar totals."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from lobe.chat_worker.providers.registry import build_provider
from lobe.devtools.fake_upstream import FakeUpstream
from lobe.devtools.provider_fixtures import fixture_files, load
from lobe.shared.events.chat import TokenUsage

from .support import collect, deployment, replay, request


def expected_usage(raw: dict[str, Any] | None) -> TokenUsage | None:
    if raw is None:
        return None
    thoughts = raw.get("thoughtsTokenCount", 0)
    usage = TokenUsage(
        prompt_tokens=raw["promptTokenCount"],
        completion_tokens=raw.get("candidatesTokenCount", 0) + thoughts,
        cached_tokens=raw.get("cachedContentTokenCount", 0),
        reasoning_tokens=thoughts,
    )
    assert usage.total_tokens == raw["totalTokenCount"]  # nothing billed is lost in the mapping
    return usage


def expected_finish(expected: dict[str, Any]) -> str:
    if (expected.get("prompt_feedback") or {}).get("blockReason"):
        return "content_filter"
    if expected.get("function_calls"):
        return "tool_calls"
    return {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter"}[expected["finish_reason"]]


@pytest.mark.parametrize("name", fixture_files("gemini"))
@pytest.mark.parametrize("seed", [1, 2])
async def test_transcript_assembles_to_the_sidecar_totals(
    name: str, seed: int, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    expected, got = await replay(upstream, session, name, "gemini", seed=seed, model="gemini-x")

    if "error" in expected:  # an HTTP error body
        assert got.error is not None
        assert got.finished is None
        if expected["error"]["status"] == "INVALID_ARGUMENT" and "API key" in expected["error"]["message"]:
            assert (got.error.status, got.error.code) == (502, "upstream_auth")  # our key, not the client's
        else:
            assert (got.error.status, got.error.code, got.error.retryable) == (
                502,
                "upstream_not_found",
                True,
            )
            assert got.error.message == expected["error"]["message"]
        return
    assert got.text == expected["text"]
    assert got.reasoning == expected.get("thought_text", "")
    calls = [(c["name"], c["parsed"]) for c in got.tool_calls()]
    assert calls == [(c["name"], c["args"]) for c in expected.get("function_calls", [])]
    assert all(c["id"] for c in got.tool_calls())
    if "trailing_raw_error" in expected:  # the un-framed error after the last event
        error = expected["trailing_raw_error"]["error"]
        assert got.finished is None
        assert got.error is not None
        assert (got.error.code, got.error.message, got.error.started) == (
            error["status"],
            error["message"],
            True,
        )
        return
    assert got.error is None
    assert got.finished is not None
    assert got.finished.reason == expected_finish(expected)
    assert got.finished.model == (expected.get("model_version") or "gemini-x")
    assert got.usage == expected_usage(expected.get("usage_final", expected.get("usage")))


async def test_function_round_trip_translates_to_the_recorded_gemini_request(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    transcript = load("gemini/stream_text_after_function_response.sse")
    recorded = transcript.meta["request"]
    upstream.push(transcript.reply())
    calls = [c["parts"][0]["functionCall"] for c in recorded["contents"] if c["role"] == "model"]
    results = [c["parts"][0]["functionResponse"] for c in recorded["contents"][2::2]]
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a helpful chatbot."},
        {"role": "user", "content": "What is the temperature of the capital of France?"},
    ]
    for call, result in zip(calls, results, strict=True):
        function = {"name": call["name"], "arguments": json.dumps(call["args"])}
        messages.append(
            {
                "role": "assistant",
                "tool_calls": [{"id": call["id"], "type": "function", "function": function}],
            }
        )
        messages.append(
            {"role": "tool", "tool_call_id": call["id"], "content": result["response"]["return_value"]}
        )
    lower = {"STRING": "string", "OBJECT": "object"}
    tools = []
    for declaration in recorded["tools"][0]["functionDeclarations"]:
        params = json.loads(json.dumps(declaration["parameters"]))
        params["type"] = lower[params["type"]]
        for prop in params["properties"].values():
            prop["type"] = lower[prop["type"]]
        params["additionalProperties"] = False  # OpenAI strict schemas carry it; Gemini refuses it
        function = {
            "name": declaration["name"],
            "description": declaration["description"],
            "parameters": params,
        }
        tools.append({"type": "function", "function": function})
    dep = deployment("gemini", upstream.url + "/v1beta", model="gemini-2.0-flash")

    got = await collect(build_provider(dep, session), request(messages=messages, tools=tools))

    assert got.text == transcript.expected["text"]
    sent = upstream.last
    assert sent.path == "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    assert sent.query == {"alt": "sse"}
    assert sent.headers["x-goog-api-key"] == "test-key-gemini"
    assert "key" not in sent.query
    assert sent.json == recorded


async def test_generation_config_tool_choice_and_images_are_translated(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.push(load("gemini/stream_text.sse").reply())
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "$schema": "x", "required": ["a"]}
    body = request(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklGRg=="}},
                    {"type": "image_url", "image_url": {"url": "https://example.test/a.png?x=1"}},
                ],
            }
        ],
        temperature=0.3,
        top_p=0.9,
        max_completion_tokens=50,
        stop="STOP",
        seed=7,
        response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        tool_choice={"type": "function", "function": {"name": "f"}},
        reasoning_effort="low",
    )
    await collect(build_provider(deployment("gemini", upstream.url), session), body)
    sent = upstream.last.json
    assert sent["contents"][0]["parts"] == [
        {"text": "look"},
        {"inlineData": {"mimeType": "image/webp", "data": "UklGRg=="}},
        {"fileData": {"mimeType": "image/png", "fileUri": "https://example.test/a.png?x=1"}},
    ]
    assert sent["generationConfig"] == {
        "temperature": 0.3,
        "topP": 0.9,
        "maxOutputTokens": 50,
        "seed": 7,
        "stopSequences": ["STOP"],
        "responseMimeType": "application/json",
        "responseSchema": {"type": "OBJECT", "properties": {"a": {"type": "INTEGER"}}, "required": ["a"]},
        "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 1024},
    }
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}}
    assert "systemInstruction" not in sent
