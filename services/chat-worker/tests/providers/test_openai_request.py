"""The request the OpenAI-family adapters send upstream: URL, auth header, body."""

from __future__ import annotations

import aiohttp

from lobe.chat_worker.providers.registry import build_provider
from lobe.devtools.fake_upstream import FakeUpstream
from lobe.devtools.provider_fixtures import load

from .support import collect, deployment, request


async def test_openai_request_equals_the_recorded_request_plus_forced_streaming(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    transcript = load("openai/chat_stream_text.sse")
    recorded = transcript.meta["request"]
    upstream.push(transcript.reply())
    client_body = {**recorded, "stream": False}  # a non-streaming client is streamed upstream
    client_body.pop("stream_options")
    provider = build_provider(deployment("openai", upstream.url + "/v1", model="gpt-4o-mini"), session)

    got = await collect(provider, request(**client_body, metadata={"team": "a"}))

    assert got.error is None
    sent = upstream.last
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.headers["authorization"] == "Bearer test-key-openai"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json == recorded  # incl. the assistant tool_calls and the tool result message


async def test_openai_sends_max_completion_tokens_and_compatible_servers_max_tokens(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    transcript = load("openai/chat_stream_text.sse")
    for kind, field in (("openai", "max_completion_tokens"), ("openai_compatible", "max_tokens")):
        upstream.push(transcript.reply())
        provider = build_provider(deployment(kind, upstream.url, api_key_env="OPENAI_API_KEY"), session)
        await collect(provider, request(max_tokens=77, user="u-1", stop=["x"]))
        body = upstream.last.json
        assert body[field] == 77
        assert {"max_tokens", "max_completion_tokens"} - {field} & body.keys() == set()
        assert body["stop"] == ["x"]
        assert ("user" in body) == (kind == "openai")
        assert body["stream_options"] == {"include_usage": True}


async def test_azure_uses_deployment_url_api_version_and_api_key_header(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.push(load("openai_compatible/azure_stream_content_filter.sse").reply())
    dep = deployment("azure_openai", upstream.url + "/", model="my-gpt4o", api_version="2025-01-01-preview")
    provider = build_provider(dep, session)

    got = await collect(provider, request(max_completion_tokens=5))

    assert got.finished is not None
    assert got.finished.reason == "content_filter"
    sent = upstream.last
    assert sent.path == "/openai/deployments/my-gpt4o/chat/completions"
    assert sent.query == {"api-version": "2025-01-01-preview"}
    assert sent.headers["api-key"] == "test-key-azure"
    assert "authorization" not in sent.headers
    assert "model" not in sent.json
    assert sent.json["max_completion_tokens"] == 5


async def test_deployment_headers_are_sent_and_no_key_means_no_auth_header(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.push(load("openai/chat_stream_text.sse").reply())
    dep = deployment("openai_compatible", upstream.url, headers={"X-Title": "lobe"})
    await collect(build_provider(dep, session), request())
    assert upstream.last.headers["x-title"] == "lobe"
    assert "authorization" not in upstream.last.headers
