"""The Messages request the Anthropic adapter sends for an OpenAI-shaped request."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from lobe.chat_worker.providers.registry import build_provider
from lobe.devtools.fake_upstream import FakeUpstream
from lobe.devtools.provider_fixtures import load

from .support import collect, deployment, request


def strip_caller(recorded: dict[str, Any]) -> dict[str, Any]:
    """The SDK's beta tool runner adds `caller` to tool_use blocks; it is not part of the API we use."""
    copy: dict[str, Any] = json.loads(json.dumps(recorded))
    for message in copy["messages"]:
        for block in message["content"] if isinstance(message["content"], list) else ():
            block.pop("caller", None)
    return copy


async def test_tool_round_trip_translates_to_the_recorded_anthropic_request(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    transcript = load("anthropic/messages_stream_text.sse")
    recorded = transcript.meta["request"]
    tool_use = recorded["messages"][1]["content"][0]
    tool_result = recorded["messages"][2]["content"][0]
    tool = recorded["tools"][0]
    upstream.push(transcript.reply())
    body = request(
        model="claude",
        max_tokens=1024,
        stream=True,
        messages=[
            {"role": "user", "content": "What is the weather in SF?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": tool_use["id"],
                        "type": "function",
                        "function": {"name": tool_use["name"], "arguments": json.dumps(tool_use["input"])},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": tool_result["tool_use_id"], "content": tool_result["content"]},
        ],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": tool["name"],
                    "description": tool["description"],
                    "parameters": tool["input_schema"],
                },
            }
        ],
    )
    provider = build_provider(deployment("anthropic", upstream.url, model="claude-haiku-4-5"), session)

    got = await collect(provider, body)

    assert got.error is None
    sent = upstream.last
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "test-key-anthropic"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    assert sent.json == strip_caller(recorded)


async def test_system_images_parallel_tool_results_and_sampling_are_translated(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.push(load("anthropic/messages_stream_docs_basic.sse").reply())
    body = request(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {"type": "image_url", "image_url": {"url": "https://example.test/cat.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}},
                    {"id": "b", "type": "function", "function": {"name": "f", "arguments": ""}},
                ],
            },
            {"role": "tool", "tool_call_id": "a", "content": "one"},
            {"role": "tool", "tool_call_id": "b", "content": [{"type": "text", "text": "two"}]},
        ],
        tools=[{"type": "function", "function": {"name": "f"}}],
        tool_choice="required",
        parallel_tool_calls=False,
        temperature=1.7,
        top_p=0.5,
        stop="END",
        user="u-9",
        seed=3,
    )
    await collect(build_provider(deployment("anthropic", upstream.url), session), body)
    sent = upstream.last.json
    assert sent["system"] == "Be brief.\n\nUse metric."
    assert sent["max_tokens"] == 4096
    assert sent["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.test/cat.jpg"}},
    ]
    assert sent["messages"][1]["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "a", "name": "f", "input": {"x": 1}},
        {"type": "tool_use", "id": "b", "name": "f", "input": {}},
    ]
    assert sent["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "a", "content": "one"},
            {"type": "tool_result", "tool_use_id": "b", "content": "two"},
        ],
    }
    assert len(sent["messages"]) == 3
    assert sent["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert (sent["temperature"], sent["top_p"], sent["stop_sequences"]) == (1.0, 0.5, ["END"])
    assert sent["metadata"] == {"user_id": "u-9"}
    assert "seed" not in sent


async def test_json_schema_response_format_becomes_output_config(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    transcript = load("anthropic/messages_stream_structured_output.sse")
    upstream.push(transcript.reply())
    schema = {"type": "array", "items": {"type": "integer"}}
    body = request(response_format={"type": "json_schema", "json_schema": {"name": "ids", "schema": schema}})
    got = await collect(build_provider(deployment("anthropic", upstream.url), session), body)
    assert upstream.last.json["output_config"] == transcript.meta["request"]["output_config"]
    assert json.loads(got.text) == [12345, 67890]


async def test_tool_call_arguments_that_are_not_json_are_a_400_naming_the_field(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    body = request(
        messages=[
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{x"}}],
            },
        ]
    )
    got = await collect(build_provider(deployment("anthropic", upstream.url), session), body)
    assert got.error is not None
    assert got.error.status == 400
    assert "messages[1].tool_calls[0].function.arguments" in got.error.message
    assert upstream.requests == []
