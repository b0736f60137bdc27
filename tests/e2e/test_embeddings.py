"""POST /v1/embeddings end to end with the official `openai` SDK: the gateway's edge (validation,
rate limits, budget, the per-user cache), a worker routing to fake upstreams that speak each
provider's wire, and billing's ledger (one row per request, kind `embedding`)."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import nats
import openai
import pytest

from lobe.billing.admin import admin_session
from lobe.billing.plans import Override
from lobe.billing.service import BillingService
from lobe.chat_worker.deployments import Deployment, ModelCatalog, RoutedModel, with_builtin
from lobe.chat_worker.providers.mock import mock_vector
from lobe.devtools.fake_embeddings import embeddings_answer, fake_tokens, fake_vector
from lobe.devtools.fake_upstream import FakeUpstream

from .conftest import API_KEY, Suite, billing_settings, start_gateway, start_worker
from .ledger import ledger_rows

ADMIN_TOKEN = "e2e-admin-token"
# Each provider's embeddings wire, behind a model of its own (`serves: [embeddings]`).
PROVIDERS = {
    "openai": "/v1",
    "openai_compatible": "/v1",
    "azure_openai": "",
    "gemini": "/v1beta",
    "ollama": "",
}


def embedding_models(upstream_url: str) -> ModelCatalog:
    models = [
        RoutedModel(
            name=f"embed-{kind}",
            serves=["embeddings"],
            deployments=[
                Deployment(
                    name=f"embed-{kind}",
                    provider=kind,
                    model="text-embedding-3-small",
                    base_url=upstream_url + path,
                    api_key_env="LOBE_E2E_EMBED_KEY",
                )
            ],
        )
        for kind, path in PROVIDERS.items()
    ]
    chat_only = RoutedModel(name="chat-only", deployments=[Deployment(name="chat-only", provider="mock")])
    return with_builtin(ModelCatalog(models=[*models, chat_only]))


@pytest.fixture
async def embedding_upstream() -> AsyncIterator[FakeUpstream]:
    upstream = await FakeUpstream(answer=embeddings_answer).start()
    yield upstream
    await upstream.stop()


@pytest.fixture
async def routed(gateway_only: Suite, embedding_upstream: FakeUpstream) -> AsyncIterator[Suite]:
    worker = await start_worker(gateway_only.nats_url, embedding_models(embedding_upstream.url))
    yield gateway_only
    await worker.stop()


def float32(values: list[float]) -> list[float]:
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


@pytest.mark.parametrize("kind", sorted(PROVIDERS))
async def test_each_provider_answers_the_sdk_in_openais_shape(
    routed: Suite, embedding_upstream: FakeUpstream, kind: str
) -> None:
    texts = ["first text", "second, longer text"]
    answer = await routed.client.embeddings.create(model=f"embed-{kind}", input=texts, dimensions=6)

    assert answer.object == "list"
    assert answer.model == f"embed-{kind}"
    assert [item.index for item in answer.data] == [0, 1]
    assert [item.embedding for item in answer.data] == [fake_vector(t, 6) for t in texts]
    expected_tokens = fake_tokens(texts)  # Gemini reports none: the worker's estimate is the same rule
    assert (answer.usage.prompt_tokens, answer.usage.total_tokens) == (expected_tokens, expected_tokens)
    assert len(embedding_upstream.requests) == 1


async def test_float_and_base64_give_the_same_float32_vector(routed: Suite) -> None:
    as_float = await routed.client.embeddings.create(model="mock", input="hello", encoding_format="float")
    raw = await routed.client.embeddings.with_raw_response.create(
        model="mock", input="hello", encoding_format="base64"
    )
    encoded = raw.parse().data[0].embedding
    assert isinstance(encoded, str)  # asked for base64 explicitly: the SDK leaves it as sent
    decoded = list(struct.unpack("<16f", base64.b64decode(encoded)))
    assert as_float.data[0].embedding == decoded == mock_vector("hello", 16)
    # The SDK's default (base64 on the wire, decoded by the SDK) reads the same floats.
    default = await routed.client.embeddings.create(model="mock", input="hello")
    assert default.data[0].embedding == decoded


async def test_dimensions_sizes_the_mock_vector(routed: Suite) -> None:
    answer = await routed.client.embeddings.create(model="mock", input=["a", "b", "c"], dimensions=1024)
    assert [len(item.embedding) for item in answer.data] == [1024, 1024, 1024]
    assert answer.data[2].embedding == mock_vector("c", 1024)


async def error_of(suite: Suite, body: Any) -> tuple[int, dict[str, Any]]:
    async with suite.http.post(f"{suite.base_url}/v1/embeddings", json=body, headers=suite.headers()) as r:
        return r.status, (await r.json())["error"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "mock", "input": ""}, "input"),
        ({"model": "mock", "input": []}, "input"),
        ({"model": "mock", "input": ["ok", ""]}, "input"),
        ({"model": "mock", "input": ["x"] * 2049}, "input"),
        ({"model": "mock", "input": 42}, "input"),
        ({"model": "mock", "input": [1, 2, 3]}, "input"),
        ({"model": "mock", "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"model": "mock", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "mock", "input": "x", "dimensions": "8"}, "dimensions"),
        ({"input": "x"}, "model"),
    ],
)
async def test_bad_input_is_openais_400_naming_the_param(routed: Suite, body: Any, param: str) -> None:
    status, error = await error_of(routed, body)
    assert status == 400
    assert (error["type"], error["param"]) == ("invalid_request_error", param)


async def test_2048_inputs_are_admitted(routed: Suite) -> None:
    answer = await routed.client.embeddings.create(model="mock", input=["x"] * 2048, dimensions=2)
    assert len(answer.data) == 2048


async def test_unknown_and_chat_only_models_are_404s(routed: Suite) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        await routed.client.embeddings.create(model="no-such-model", input="x")
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError) as chat_only:
        await routed.client.embeddings.create(model="chat-only", input="x")
    assert chat_only.value.code == "model_not_supported"
    # And the other way round: an embedding model does not chat.
    with pytest.raises(openai.NotFoundError) as not_chat:
        await routed.client.chat.completions.create(
            model="embed-openai", messages=[{"role": "user", "content": "hi"}]
        )
    assert not_chat.value.code == "model_not_supported"


async def test_no_worker_is_a_503(gateway_only: Suite) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        await gateway_only.client.with_options(max_retries=0).embeddings.create(model="mock", input="x")
    assert caught.value.status_code == 503


# Billing, the cache and the rate limits together.


@pytest.fixture
def tight_limits(tmp_path: Path) -> Path:
    path = tmp_path / "rate_limits.yaml"
    path.write_text(
        "window_s: 60\ndefault_tier: free\n"
        "tiers:\n  free: {requests: 100, tokens: 200, concurrent: 10}\n"
        "plans: {free: free, basic: free}\nusers: {}\nper_ip: {requests: 1000, window_s: 60}\n"
    )
    return path


@pytest.fixture
async def billed(
    nats_url: str,
    billing_db: str,
    redis_url: str,
    tight_limits: Path,
    embedding_upstream: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Suite]:
    monkeypatch.setenv("LOBE_E2E_EMBED_KEY", "sk-e2e")
    async with BillingService(billing_settings(nats_url, billing_db, ADMIN_TOKEN)) as billing:
        assert billing.admin is not None
        await billing.admin.create_user("alice", plan="basic")
        worker = await start_worker(nats_url, embedding_models(embedding_upstream.url))
        runner, base_url = await start_gateway(
            nats_url,
            billing_enabled=True,
            cache_enabled=True,
            cache_redis_url=redis_url,
            redis_url=redis_url,
            rate_limits_enabled=True,
            rate_limits_file=tight_limits,
        )
        nc = await nats.connect(nats_url)
        async with aiohttp.ClientSession() as http:
            client = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=API_KEY, max_retries=0)
            yield Suite(base_url, nats_url, nc, client, http)
        await nc.close()
        await runner.cleanup()
        await worker.stop()


async def test_one_ledger_row_per_request_and_the_second_call_is_a_cache_hit(
    billed: Suite, billing_db: str, embedding_upstream: FakeUpstream
) -> None:
    texts = ["alpha", "beta gamma"]
    first = await billed.client.embeddings.with_raw_response.create(model="embed-openai", input=texts)
    second = await billed.client.embeddings.with_raw_response.create(
        model="embed-openai", input=texts, encoding_format="float"
    )
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert len(embedding_upstream.requests) == 1  # the hit reached no provider
    assert [d.embedding for d in second.parse().data] == [float32(fake_vector(t, 8)) for t in texts]

    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    rows = {row["request_id"]: row for row in await ledger_rows(billing_db, ids)}
    tokens = fake_tokens(texts)
    live, hit = rows[ids[0]], rows[ids[1]]
    assert (live["kind"], live["status"], live["prompt_tokens"], live["completion_tokens"]) == (
        "embedding",
        "ok",
        tokens,
        0,
    )
    # text-embedding-3-small at $0.02 per million input tokens (billing's price table).
    assert Decimal(live["cost_usd"]) == Decimal("0.02") * tokens / 1_000_000
    assert (hit["kind"], hit["status"], hit["prompt_tokens"]) == ("embedding", "cache_hit", tokens)


async def test_the_token_window_and_the_budget_refuse_as_openai_does(billed: Suite, billing_db: str) -> None:
    # 200 tokens a minute: the inputs' upper bound (bytes + framing) passes it in one request.
    with pytest.raises(openai.RateLimitError) as limited:
        await billed.client.embeddings.create(model="embed-openai", input="x" * 300)
    assert limited.value.code == "rate_limit_exceeded"

    async with admin_session(billing_db, billed.nats_url) as admin:
        await admin.set_limits("alice", Override(cost_usd=Decimal("0.0000000001")))
    with pytest.raises(openai.RateLimitError) as broke:
        await billed.client.embeddings.create(model="embed-openai", input="fresh text")
    assert broke.value.code == "insufficient_quota"
