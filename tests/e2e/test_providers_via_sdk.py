"""The official openai SDK against the gateway, for every provider kind, through fake upstreams
replaying the recorded transcripts: what the client assembles must equal the sidecar's totals.

openai SDK → gateway → NATS → worker → adapter → fake upstream (byte-for-byte replay, random splits).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI

from lobe.chat_worker.providers.errors import CLIENT_MESSAGES
from lobe.devtools.fake_upstream import FakeUpstream
from lobe.devtools.provider_fixtures import Transcript, load

from .conftest import API_KEY, Suite
from .providers import ROUTES, kind_of, public_model, routed_worker
from .test_chat_path import usage_events
from .transcripts import Expected, expected_answer

ANSWERS = [
    "openai/chat_stream_text.sse",
    "openai/chat_stream_parallel_tool_calls.sse",
    "openai/chat_stream_finish_length.sse",
    "openai/chat_completion.json",
    "anthropic/messages_stream_text.sse",
    "anthropic/messages_stream_text_and_tool_use.sse",
    "anthropic/message_tool_use.json",
    "gemini/stream_text_thoughts_usage.sse",
    "gemini/stream_thinking_function_call.sse",
    "gemini/generate_content.json",
    "ollama/api_chat_stream.ndjson",
    "ollama/api_chat_stream_tools.ndjson",
    "openai_compatible/deepseek_stream_reasoning_content.sse",
    "openai_compatible/groq_stream_tool_call.sse",
    "openai_compatible/mistral_stream_thinking.sse",
    "ollama/v1_chat_completion.json",
    "openai_compatible/azure_chat_completion.json",
]

# HTTP error bodies → (status the client gets, SDK exception). Our policy (chat_worker
# providers/errors.py): a refused request stays 400, a rate limit stays 429, anything that is our
# configuration's fault or the provider's is 502.
HTTP_ERRORS = [
    ("openai/error_400_unsupported_value.json", 400, openai.BadRequestError),
    ("openai_compatible/openrouter_error_429.json", 429, openai.RateLimitError),
    ("anthropic/error_429_rate_limit.json", 429, openai.RateLimitError),
    ("anthropic/error_400_invalid_request.json", 400, openai.BadRequestError),
    ("gemini/error_404_model_not_found.json", 502, openai.InternalServerError),
    ("ollama/error.json", 502, openai.InternalServerError),
]

# Errors after output began: (transcript, the status a non-streaming client gets).
MID_STREAM_ERRORS = [
    ("anthropic/messages_stream_error_overloaded.sse", 502),
    ("openai_compatible/groq_stream_error_event.sse", 400),
]

MESSAGES: list[Any] = [{"role": "user", "content": "Answer as recorded."}]


@dataclass
class Got:
    text: str = ""
    reasoning: str = ""
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Any = None

    def tool_calls(self) -> list[tuple[str, Any]]:
        return [(c["name"], json.loads(c["arguments"])) for _, c in sorted(self.calls.items())]


@pytest.fixture(autouse=True)
def _provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "AZURE_OPENAI_API_KEY"):
        monkeypatch.setenv(env, f"test-key-{env.split('_')[0].lower()}")


def sdk(suite: Suite) -> AsyncOpenAI:
    # No SDK retries: a retried 429 would hit the fake upstream again and hide what we sent.
    return AsyncOpenAI(base_url=f"{suite.base_url}/v1", api_key=API_KEY, max_retries=0)


def tools_for(expected: Expected) -> list[Any] | openai.NotGiven:
    """A tools request naming the functions the transcript calls (the recorded answer decides)."""
    if not expected.tool_calls:
        return openai.NOT_GIVEN
    names = dict.fromkeys(name for name, _ in expected.tool_calls)
    return [
        {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}} for name in names
    ]


async def stream_answer(client: AsyncOpenAI, model: str, tools: Any) -> Got:
    got = Got()
    stream = await client.chat.completions.create(
        model=model, messages=MESSAGES, tools=tools, stream=True, stream_options={"include_usage": True}
    )
    ids = set()
    async for chunk in stream:
        ids.add(chunk.id)
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            got.usage = chunk.usage
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        delta = choice.delta
        got.text += delta.content or ""
        got.reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
        for call in delta.tool_calls or ():
            entry = got.calls.setdefault(call.index, {"name": "", "arguments": ""})
            if call.function is not None:
                entry["name"] += call.function.name or ""
                entry["arguments"] += call.function.arguments or ""
        got.finish_reason = choice.finish_reason or got.finish_reason
    assert len(ids) == 1
    return got


async def complete_answer(client: AsyncOpenAI, model: str, tools: Any) -> Got:
    completion = await client.chat.completions.create(model=model, messages=MESSAGES, tools=tools)
    assert completion.object == "chat.completion"
    message = completion.choices[0].message
    got = Got(text=message.content or "", finish_reason=completion.choices[0].finish_reason)
    got.reasoning = (message.model_extra or {}).get("reasoning_content") or ""
    for index, call in enumerate(message.tool_calls or ()):
        assert call.type == "function"
        got.calls[index] = {"name": call.function.name, "arguments": call.function.arguments}
    got.usage = completion.usage
    return got


def assert_matches(got: Got, expected: Expected) -> None:
    assert got.text == expected.text
    assert got.reasoning == expected.reasoning
    assert got.tool_calls() == expected.tool_calls
    assert got.finish_reason == expected.finish_reason
    assert got.usage is not None
    assert (got.usage.prompt_tokens, got.usage.completion_tokens) == (
        expected.prompt_tokens,
        expected.completion_tokens,
    )
    assert got.usage.total_tokens == expected.prompt_tokens + expected.completion_tokens
    assert got.usage.prompt_tokens_details.cached_tokens == expected.cached_tokens


def replay(upstream: FakeUpstream, transcript: Transcript, seed: int) -> None:
    upstream.push(transcript.reply(seed=seed, max_chunk=11))


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "non-stream"])
@pytest.mark.parametrize("name", ANSWERS)
async def test_sdk_assembles_the_transcript_totals(
    name: str, streaming: bool, gateway_only: Suite, upstream: FakeUpstream
) -> None:
    transcript = load(name)
    expected = expected_answer(transcript)
    kind = kind_of(name)
    replay(upstream, transcript, seed=len(name))
    async with routed_worker(gateway_only.nats_url, kind, upstream):
        ask = stream_answer if streaming else complete_answer
        got = await ask(sdk(gateway_only), public_model(kind), tools_for(expected))

    assert_matches(got, expected)
    sent = upstream.last
    assert sent.path == ROUTES[kind].path
    for tool_name, _ in expected.tool_calls:  # the tools went upstream, in whatever shape it speaks
        assert tool_name.encode() in sent.body
    [event] = await usage_events(gateway_only, expect=1)
    assert (event.status, event.provider, event.deployment) == ("ok", kind, f"fake-{kind}")
    assert (event.usage.prompt_tokens, event.usage.completion_tokens, event.usage.basis) == (
        expected.prompt_tokens,
        expected.completion_tokens,
        "provider",
    )


def provider_words(document: object) -> list[str]:
    """The texts of a provider's error body: every "message" or "error" string in it."""
    if isinstance(document, dict):
        found = [v for k, v in document.items() if k in ("message", "error") and isinstance(v, str)]
        return found + [w for v in document.values() for w in provider_words(v)]
    if isinstance(document, list):
        return [w for v in document for w in provider_words(v)]
    return []


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "non-stream"])
@pytest.mark.parametrize(("name", "status", "exception"), HTTP_ERRORS)
async def test_provider_http_error_maps_to_status_and_openai_error_json(
    name: str,
    status: int,
    exception: type[openai.APIStatusError],
    streaming: bool,
    gateway_only: Suite,
    upstream: FakeUpstream,
) -> None:
    transcript = load(name)
    kind = kind_of(name)
    replay(upstream, transcript, seed=1)
    async with routed_worker(gateway_only.nats_url, kind, upstream):
        with pytest.raises(exception) as caught:
            await sdk(gateway_only).chat.completions.create(
                model=public_model(kind), messages=MESSAGES, stream=streaming
            )

    error = caught.value
    assert error.status_code == status
    assert isinstance(error.body, dict)
    assert set(error.body) == {"message", "type", "param", "code"}  # OpenAI's error object
    # The message is ours for the code; the provider's words (its account, a proxy's page) are not.
    assert error.body["message"] == CLIENT_MESSAGES[error.body["code"]]
    words = provider_words(json.loads(transcript.body))
    assert words  # e.g. Anthropic's 429 names our organisation's id
    assert not any(w in error.body["message"] for w in words)
    assert len(upstream.requests) == 1  # one deployment, no retry behind the client's back
    [event] = await usage_events(gateway_only, expect=1)
    assert event.status == "error"


@pytest.mark.parametrize(("name", "status"), MID_STREAM_ERRORS)
async def test_provider_error_mid_stream_raises_api_error_and_never_sends_done(
    name: str, status: int, gateway_only: Suite, upstream: FakeUpstream
) -> None:
    transcript = load(name)
    kind = kind_of(name)
    model = public_model(kind)
    for seed in (1, 2, 3):
        replay(upstream, transcript, seed=seed)
    async with routed_worker(gateway_only.nats_url, kind, upstream):
        received: list[str] = []
        finishes: list[str | None] = []

        async def read_stream() -> None:
            stream = await sdk(gateway_only).chat.completions.create(
                model=model, messages=MESSAGES, stream=True
            )
            async for chunk in stream:
                if chunk.choices:
                    delta = chunk.choices[0].delta
                    received.append(delta.content or (delta.model_extra or {}).get("reasoning_content") or "")
                    finishes.append(chunk.choices[0].finish_reason)

        with pytest.raises(openai.APIError) as caught:
            await read_stream()

        # The same answer on the raw wire: an OpenAI error event last, and no [DONE].
        body = {"model": model, "messages": MESSAGES, "stream": True}
        async with gateway_only.http.post(
            f"{gateway_only.base_url}/v1/chat/completions", json=body, headers=gateway_only.headers()
        ) as response:
            assert response.status == 200
            raw = (await response.read()).decode()

        with pytest.raises(openai.APIStatusError) as non_streaming:
            await sdk(gateway_only).chat.completions.create(model=model, messages=MESSAGES)

    assert "".join(received)  # output had begun: this is the mid-stream case
    assert set(finishes) == {None}  # never a clean finish
    assert str(caught.value)
    events = [e.removeprefix("data: ") for e in raw.strip().split("\n\n")]
    assert "[DONE]" not in events
    last = json.loads(events[-1])
    assert set(last) == {"error"}
    assert last["error"]["message"] == str(caught.value)
    assert non_streaming.value.status_code == status
