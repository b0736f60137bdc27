"""Ollama's native NDJSON transcripts replayed in random small chunks, and the request it gets."""

from __future__ import annotations

import aiohttp
import pytest

from lobe.chat_worker.providers.registry import build_provider
from lobe.devtools.fake_upstream import FakeUpstream
from lobe.devtools.provider_fixtures import fixture_files, load
from lobe.shared.events.chat import TokenUsage

from .support import collect, deployment, replay, request

NATIVE = [n for n in fixture_files("ollama") if not n.endswith("v1_chat_completion.json")]


@pytest.mark.parametrize("name", NATIVE)
@pytest.mark.parametrize("seed", [1, 2])
async def test_transcript_assembles_to_the_sidecar_totals(
    name: str, seed: int, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    expected, got = await replay(upstream, session, name, "ollama", seed=seed, model="llama3.2")

    if "error" in expected:
        assert got.error is not None
        assert got.finished is None
        assert got.error.message == expected["error"]
        assert (got.error.status, got.error.retryable) == (502, True)
        assert got.error.started is bool(expected.get("text"))
        assert got.text == expected.get("text", "")
        return
    assert got.error is None
    assert got.text == expected["text"]
    calls = [(c["name"], c["parsed"]) for c in got.tool_calls()]
    assert calls == [
        (c["function"]["name"], c["function"]["arguments"]) for c in expected.get("tool_calls", [])
    ]
    assert got.finished is not None
    reason = (
        "tool_calls"
        if expected.get("tool_calls")
        else {"length": "length"}.get(expected["done_reason"], "stop")
    )
    assert got.finished.reason == reason
    fields = expected["final_usage_fields"]
    want = (
        TokenUsage(prompt_tokens=fields["prompt_eval_count"], completion_tokens=fields["eval_count"])
        if fields
        else None
    )
    assert got.usage == want


async def test_request_uses_api_chat_with_options_format_tools_and_base64_images(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    transcript = load("ollama/api_chat_stream_tools.ndjson")
    upstream.push(transcript.reply())
    recorded = transcript.meta["request"]
    body = request(
        messages=[
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": recorded["messages"][0]["content"]},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ],
            },
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        ],
        tools=recorded["tools"],
        temperature=0.1,
        max_tokens=20,
        stop="END",
        response_format={"type": "json_object"},
    )
    got = await collect(build_provider(deployment("ollama", upstream.url, model="llama3.2"), session), body)
    assert got.finished is not None
    sent = upstream.last
    assert sent.path == "/api/chat"
    assert sent.json["model"] == "llama3.2"
    assert sent.json["stream"] is True
    assert sent.json["tools"] == recorded["tools"]
    assert sent.json["messages"][1] == {
        "role": "user",
        "content": recorded["messages"][0]["content"],
        "images": ["iVBORw0KGgo="],
    }
    assert sent.json["messages"][2]["tool_calls"] == [{"function": {"name": "f", "arguments": {"a": 1}}}]
    assert sent.json["options"] == {"temperature": 0.1, "num_predict": 20, "stop": ["END"]}
    assert sent.json["format"] == "json"


async def test_image_by_url_is_a_400_naming_the_part(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    body = request(
        messages=[
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}
        ]
    )
    got = await collect(build_provider(deployment("ollama", upstream.url), session), body)
    assert got.error is not None
    assert got.error.status == 400
    assert "messages[0].content[0].image_url.url" in got.error.message
    assert upstream.requests == []
