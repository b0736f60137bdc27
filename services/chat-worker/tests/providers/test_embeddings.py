"""Each embeddings adapter against a fake upstream: the documented transcripts replayed in small
chunks read to the sidecar's vectors and usage; the translated request is the provider's wire; a
batch of any size comes back in input order; errors follow the chat status policy."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from lobe.chat_worker.providers.base import Provider, ProviderError
from lobe.chat_worker.providers.registry import build_provider
from lobe.devtools.fake_embeddings import FAKE_DIMENSIONS, embeddings_answer, fake_tokens, fake_vector
from lobe.devtools.fake_upstream import FakeUpstream, Reply
from lobe.devtools.provider_fixtures import fixture_files, load
from lobe.shared.embeddings_schema import EmbeddingsRequest

from .support import deployment

# Which adapter reads each transcript, and the base URL path its deployment is configured with.
KIND = {
    "openai": ("openai", "/v1"),
    "azure": ("azure_openai", ""),
    "gemini": ("gemini", "/v1beta"),
    "ollama": ("ollama", ""),
}


def embeddings_request(**overrides: Any) -> EmbeddingsRequest:
    return EmbeddingsRequest.model_validate({"model": "public-embed", "input": "hello", **overrides})


def adapter(
    kind: str, upstream: FakeUpstream, session: aiohttp.ClientSession, path: str = "", **fields: Any
) -> Provider:
    return build_provider(deployment(kind, upstream.url + path, **fields), session)


@pytest.mark.parametrize("name", fixture_files("embeddings"))
@pytest.mark.parametrize("seed", [1, 2])
async def test_transcript_reads_to_the_sidecar_vectors_and_usage(
    name: str, seed: int, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    transcript = load(name)
    kind, path = KIND[name.split("/")[1].split("_")[0]]
    upstream.push(transcript.reply(seed=seed, max_chunk=7))
    texts = [f"text {i}" for i in range(len(transcript.expected["vectors"]))]

    got = await adapter(kind, upstream, session, path).embed(embeddings_request(input=texts))

    assert got.vectors == transcript.expected["vectors"]  # JSON numbers and float32 read exactly
    usage = transcript.expected["usage"]
    if usage is None:
        assert got.usage is None  # the worker estimates it
    else:
        assert got.usage is not None
        assert (got.usage.prompt_tokens, got.usage.completion_tokens) == (usage["prompt_tokens"], 0)


async def test_openai_request_is_the_embeddings_wire(
    upstream: FakeUpstream, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream.answer = embeddings_answer
    monkeypatch.setenv("LOBE_TEST_EMBED_KEY", "sk-test")
    body = embeddings_request(input=["a", "b"], dimensions=4, user="u1")
    got = await adapter("openai", upstream, session, "/v1", api_key_env="LOBE_TEST_EMBED_KEY").embed(body)

    sent = upstream.last
    assert sent.path == "/v1/embeddings"
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.json == {
        "model": "upstream-model",
        "input": ["a", "b"],
        "encoding_format": "float",
        "dimensions": 4,
        "user": "u1",
    }
    assert got.vectors == [fake_vector("a", 4), fake_vector("b", 4)]
    assert got.usage is not None
    assert got.usage.prompt_tokens == fake_tokens(["a", "b"])


async def test_compatible_server_gets_no_user_and_azure_names_the_deployment_in_the_url(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.answer = embeddings_answer
    body = embeddings_request(input="x", user="u1")
    await adapter("openai_compatible", upstream, session, "/v1").embed(body)
    assert upstream.last.path == "/v1/embeddings"
    assert "user" not in upstream.last.json

    got = await adapter("azure_openai", upstream, session, api_version="2024-10-21").embed(body)
    azure = upstream.last
    assert azure.path == "/openai/deployments/upstream-model/embeddings"
    assert azure.query == {"api-version": "2024-10-21"}
    assert "model" not in azure.json
    assert got.vectors == [fake_vector("x", FAKE_DIMENSIONS)]


async def test_gemini_batches_one_request_per_input_and_usage_is_left_to_the_estimate(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.answer = embeddings_answer
    got = await adapter("gemini", upstream, session, "/v1beta").embed(
        embeddings_request(input=["one", "two", "three"], dimensions=5)
    )
    sent = upstream.last
    assert sent.path == "/v1beta/models/upstream-model:batchEmbedContents"
    assert sent.json["requests"][1] == {
        "model": "models/upstream-model",
        "outputDimensionality": 5,
        "content": {"parts": [{"text": "two"}]},
    }
    assert got.vectors == [fake_vector(t, 5) for t in ("one", "two", "three")]
    assert got.usage is None


async def test_ollama_embed_sends_input_and_dimensions_and_reads_prompt_eval_count(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.answer = embeddings_answer
    got = await adapter("ollama", upstream, session).embed(embeddings_request(input=["p", "q"], dimensions=3))
    assert upstream.last.path == "/api/embed"
    assert upstream.last.json == {"model": "upstream-model", "input": ["p", "q"], "dimensions": 3}
    assert got.vectors == [fake_vector("p", 3), fake_vector("q", 3)]
    assert got.usage is not None
    assert got.usage.prompt_tokens == fake_tokens(["p", "q"])


async def test_openai_data_out_of_order_is_put_back_in_input_order(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    document = (
        b'{"object":"list","data":[{"object":"embedding","index":1,"embedding":[2.0]},'
        b'{"object":"embedding","index":0,"embedding":[1.0]}],"model":"m","usage":{"prompt_tokens":2,"total_tokens":2}}'
    )
    upstream.push(Reply(document, 200, "application/json"))
    got = await adapter("openai", upstream, session, "/v1").embed(embeddings_request(input=["a", "b"]))
    assert got.vectors == [[1.0], [2.0]]


@pytest.mark.parametrize(
    ("document", "why"),
    [
        (
            b'{"object":"list","data":[{"object":"embedding","index":0,"embedding":[1.0]}],"model":"m"}',
            "too few",
        ),
        (b'{"object":"list","data":"nope"}', "wrong shape"),
        (b"not json", "not json"),
    ],
)
async def test_an_unreadable_or_short_answer_is_a_retryable_502(
    document: bytes, why: str, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.push(Reply(document, 200, "application/json"))
    with pytest.raises(ProviderError) as caught:
        await adapter("openai", upstream, session, "/v1").embed(embeddings_request(input=["a", "b"]))
    assert (caught.value.status, caught.value.code, caught.value.retryable) == (
        502,
        "upstream_malformed",
        True,
    )


async def test_http_errors_follow_the_chat_status_policy(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.push(load("openai/error_400_code_null.json").reply())
    with pytest.raises(ProviderError) as refused:
        await adapter("openai", upstream, session, "/v1").embed(embeddings_request())
    assert (refused.value.status, refused.value.retryable) == (400, False)

    upstream.push(
        Reply(
            b'{"error":{"message":"slow down","type":"requests"}}',
            429,
            "application/json",
            headers={"Retry-After": "3"},
        )
    )
    with pytest.raises(ProviderError) as limited:
        await adapter("openai", upstream, session, "/v1").embed(embeddings_request())
    assert (limited.value.status, limited.value.retryable, limited.value.retry_after_s) == (429, True, 3.0)


async def test_the_mock_is_deterministic_unit_length_and_sized_by_dimensions(
    session: aiohttp.ClientSession,
) -> None:
    mock = build_provider(deployment("mock", "", model=""), session)
    first = await mock.embed(embeddings_request(input=["same", "other"], dimensions=32))
    again = await mock.embed(embeddings_request(input="same", dimensions=32))
    assert first.vectors[0] == again.vectors[0] != first.vectors[1]
    assert len(first.vectors[0]) == 32
    assert sum(v * v for v in first.vectors[0]) == pytest.approx(1.0, abs=1e-6)
