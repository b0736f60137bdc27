"""Each provider call is one CLIENT span with the OTel GenAI attributes, whatever the wire format
(every HTTP adapter shares HttpProvider.stream; the mock has its own), and a failed call says why."""

from __future__ import annotations

import aiohttp
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from lobe.chat_worker.providers.mock import MockProvider
from lobe.devtools.fake_upstream import FakeUpstream
from lobe.devtools.provider_fixtures import load

from .support import collect, replay, request, serve

# One transcript per wire format, and the `gen_ai.system` the conventions name for it.
CASES = [
    ("openai/chat_stream_text.sse", "openai", "openai", "/v1"),
    ("anthropic/messages_stream_text.sse", "anthropic", "anthropic", ""),
    ("gemini/stream_text.sse", "gemini", "gcp.gemini", ""),
]


@pytest.mark.parametrize(("name", "kind", "system", "base_path"), CASES)
async def test_a_provider_call_is_one_client_span_with_the_genai_attributes(
    name: str,
    kind: str,
    system: str,
    base_path: str,
    upstream: FakeUpstream,
    session: aiohttp.ClientSession,
    spans: InMemorySpanExporter,
) -> None:
    _, got = await replay(upstream, session, name, kind, seed=1, base_path=base_path)
    assert got.error is None
    assert got.finished is not None
    assert got.usage is not None
    (span,) = spans.get_finished_spans()
    assert span.name == "chat upstream-model"
    assert span.kind is SpanKind.CLIENT
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.system"] == system
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "upstream-model"
    assert attributes["gen_ai.response.model"] == got.finished.model
    assert attributes["gen_ai.response.finish_reasons"] == (got.finished.reason,)
    assert attributes["gen_ai.usage.input_tokens"] == got.usage.prompt_tokens
    assert attributes["gen_ai.usage.output_tokens"] == got.usage.completion_tokens
    assert attributes["server.address"] == "127.0.0.1"


async def test_a_failed_call_is_an_error_span_naming_the_error(
    upstream: FakeUpstream, session: aiohttp.ClientSession, spans: InMemorySpanExporter
) -> None:
    reply = load("openai/error_400_unsupported_value.json").reply()
    got = await serve(upstream, session, reply, "openai", base_path="/v1")
    assert got.error is not None
    (span,) = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == got.error.code


async def test_the_mock_is_traced_like_any_provider(spans: InMemorySpanExporter) -> None:
    got = await collect(MockProvider(), request(max_tokens=3, temperature=0.5))
    assert got.usage is not None
    (span,) = spans.get_finished_spans()
    assert span.name == "chat mock"
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "mock",
        "gen_ai.request.model": "mock",
        "gen_ai.request.max_tokens": 3,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.response.model": "mock",
        "gen_ai.response.finish_reasons": ("length",),
        "gen_ai.usage.input_tokens": got.usage.prompt_tokens,
        "gen_ai.usage.output_tokens": 3,
    }
