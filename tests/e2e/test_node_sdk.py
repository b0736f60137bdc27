"""The official openai SDK for Node (pinned in devtools/node/package.json) against the gateway,
for every endpoint beyond chat: what it parses must be what the Python SDK and the mock say."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from lobe.chat_worker.deployments import ModelCatalog, with_builtin
from lobe.chat_worker.providers.mock import mock_answer, mock_vector
from lobe.devtools.node_sdk import node_sdk_checks
from lobe.shared.chat_schema import ChatCompletionRequest

from .conftest import API_KEY, Suite, start_worker
from .test_chat_path import usage_events
from .test_embeddings import float32

TEXTS = ["first text", "second text"]  # what the script embeds


@pytest.fixture
async def served(gateway_only: Suite) -> AsyncIterator[Suite]:
    worker = await start_worker(gateway_only.nats_url, with_builtin(ModelCatalog(models=[])))
    yield gateway_only
    await worker.stop()


async def test_node_embeds_as_floats_and_base64_alike(served: Suite) -> None:
    results = await node_sdk_checks(
        served.base_url, API_KEY, "embeddings.float", "embeddings.base64", "embeddings.default"
    )
    expected = [float32(mock_vector(text, 16)) for text in TEXTS]
    assert results["embeddings.float"] == expected
    assert results["embeddings.base64"] == expected
    assert results["embeddings.default"] == expected
    python = await served.client.embeddings.create(model="mock", input=TEXTS)
    assert [item.embedding for item in python.data] == expected


async def test_node_streams_a_response_to_completed_with_usage_and_creates_one(served: Suite) -> None:
    results = await node_sdk_checks(served.base_url, API_KEY, "responses.stream", "responses.create")

    streamed = results["responses.stream"]
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello from Node"}]
    expected = "".join(
        mock_answer(ChatCompletionRequest.model_validate({"model": "mock", "messages": messages}))
    )
    assert streamed["text"] == expected
    assert streamed["types"][0] == "response.created"
    assert streamed["types"][-1] == "response.completed"
    assert streamed["status"] == "completed"
    assert streamed["usage"]["output_tokens"] == len(expected.split(" "))

    created = results["responses.create"]
    user_only = [{"role": "user", "content": "Hello from Node"}]
    assert created["output_text"] == "".join(
        mock_answer(ChatCompletionRequest.model_validate({"model": "mock", "messages": user_only}))
    )
    assert created["status"] == "completed"
    events = await usage_events(served, expect=2)
    assert sorted((e.kind, e.request_id) for e in events) == sorted(
        ("response", r["id"].removeprefix("resp_")) for r in (streamed, created)
    )
