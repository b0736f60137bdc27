"""Shared by the provider tests: a reply served through an adapter and assembled into totals,
requests and deployments to build.

The transcripts and the fake upstream replaying them live in lobe.devtools (provider_fixtures,
fake_upstream): the end-to-end tests and the benchmark use them too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from lobe.chat_worker.deployments import Deployment
from lobe.chat_worker.providers.base import Finished, Provider, ProviderError, ReasoningDelta, TextDelta
from lobe.chat_worker.providers.registry import build_provider
from lobe.devtools.fake_upstream import FakeUpstream, Reply
from lobe.devtools.provider_fixtures import load
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.chat import ChatEndpoint, TokenUsage, ToolCallDelta


@dataclass
class Assembled:
    text: str = ""
    reasoning: str = ""
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finished: Finished | None = None
    usage: TokenUsage | None = None
    error: ProviderError | None = None
    order: list[str] = field(default_factory=list)

    def tool_calls(self) -> list[dict[str, Any]]:
        """Joined fragments, arguments parsed (None when the JSON is incomplete)."""
        out = []
        for _, call in sorted(self.calls.items()):
            try:
                parsed = json.loads(call["arguments"]) if call["arguments"] else {}
            except ValueError:
                parsed = None
            out.append({**call, "parsed": parsed})
        return out


async def collect(
    provider: Provider, body: ChatCompletionRequest, endpoint: ChatEndpoint = "chat"
) -> Assembled:
    result = Assembled()
    try:
        async for event in provider.stream_for(body, endpoint):
            result.order.append(type(event).__name__)
            if isinstance(event, TextDelta):
                result.text += event.text
            elif isinstance(event, ReasoningDelta):
                result.reasoning += event.text
            elif isinstance(event, ToolCallDelta):
                call = result.calls.setdefault(event.index, {"id": None, "name": None, "arguments": ""})
                call["id"] = call["id"] or event.id
                call["name"] = call["name"] or event.name
                call["arguments"] += event.arguments
            elif isinstance(event, Finished):
                result.finished = event
            else:
                result.usage = event
    except ProviderError as exc:
        result.error = exc
    return result


async def serve(
    upstream: FakeUpstream,
    session: aiohttp.ClientSession,
    reply: Reply,
    kind: str,
    *,
    base_path: str = "",
    body: ChatCompletionRequest | None = None,
    endpoint: ChatEndpoint = "chat",
    **deployment_fields: Any,
) -> Assembled:
    """`reply` from the fake upstream through a `kind` adapter pointed at it, for `body` (default
    `request()`) as it came in on `endpoint`."""
    upstream.push(reply)
    provider = build_provider(deployment(kind, upstream.url + base_path, **deployment_fields), session)
    return await collect(provider, body or request(), endpoint)


async def replay(
    upstream: FakeUpstream,
    session: aiohttp.ClientSession,
    name: str,
    kind: str,
    *,
    seed: int,
    **deployment_fields: Any,
) -> tuple[dict[str, Any], Assembled]:
    """Transcript `name` served in random chunks of at most 9 bytes (so that splits land inside
    lines, UTF-8 sequences and CRLFs), split by `seed`: the sidecar's expected totals and what the
    adapter assembled."""
    transcript = load(name)
    reply = transcript.reply(seed=seed, max_chunk=9)
    return transcript.expected, await serve(upstream, session, reply, kind, **deployment_fields)


def request(**overrides: Any) -> ChatCompletionRequest:
    payload: dict[str, Any] = {"model": "public-model", "messages": [{"role": "user", "content": "Hi"}]}
    return ChatCompletionRequest.model_validate({**payload, **overrides})


def deployment(provider: str, base_url: str, **overrides: Any) -> Deployment:
    fields: dict[str, Any] = {"name": f"test-{provider}", "provider": provider, "base_url": base_url}
    fields.setdefault("model", "upstream-model")
    return Deployment.model_validate({**fields, **overrides})
