"""Routing fallbacks: a retryable provider failure moves the request to the next deployment."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest

from lobe.chat_worker.deployments import Deployment, ModelCatalog, RoutedModel
from lobe.devtools.fake_upstream import FakeUpstream, Reply
from lobe.devtools.provider_fixtures import load
from lobe.devtools.pytest_plugin import MakeUpstream

from .conftest import Suite, start_worker
from .test_chat_path import MESSAGES, usage_events

TEXT = load("openai/chat_stream_text.sse")
RATE_LIMITED = load("openai_compatible/openrouter_error_429.json")


@pytest.fixture
async def primary_and_secondary(make_upstream: MakeUpstream) -> tuple[FakeUpstream, FakeUpstream]:
    return await make_upstream(), await make_upstream()


@pytest.fixture
async def fallback_suite(
    gateway_only: Suite, primary_and_secondary: tuple[FakeUpstream, FakeUpstream]
) -> AsyncIterator[Suite]:
    primary, secondary = primary_and_secondary
    deployments = [
        Deployment(name="primary", provider="openai", base_url=f"{primary.url}/v1", model="m"),
        Deployment(name="secondary", provider="openai", base_url=f"{secondary.url}/v1", model="m"),
    ]
    worker = await start_worker(
        gateway_only.nats_url,
        models=ModelCatalog(models=[RoutedModel(name="routed", deployments=deployments)]),
    )
    yield gateway_only
    await worker.stop()


def transcript_reply(**options: object) -> Reply:
    return Reply(TEXT.body, content_type=TEXT.content_type, **options)  # type: ignore[arg-type]


async def test_a_rate_limited_deployment_falls_back_to_the_next(
    fallback_suite: Suite, primary_and_secondary: tuple[FakeUpstream, FakeUpstream]
) -> None:
    primary, secondary = primary_and_secondary
    primary.push(Reply(RATE_LIMITED.body, status=429, content_type="application/json"))
    secondary.push(transcript_reply())
    completion = await fallback_suite.client.chat.completions.create(model="routed", messages=MESSAGES)
    assert completion.choices[0].message.content == TEXT.expected["choices"][0]["text"]
    assert (len(primary.requests), len(secondary.requests)) == (1, 1)
    [event] = await usage_events(fallback_suite, expect=1)
    assert (event.deployment, event.status) == ("secondary", "ok")


async def test_a_client_error_does_not_fall_back(
    fallback_suite: Suite, primary_and_secondary: tuple[FakeUpstream, FakeUpstream]
) -> None:
    primary, secondary = primary_and_secondary
    bad = load("openai/error_400_unsupported_value.json")
    primary.push(Reply(bad.body, status=400, content_type="application/json"))
    with pytest.raises(openai.BadRequestError):
        await fallback_suite.client.chat.completions.create(model="routed", messages=MESSAGES)
    assert (len(primary.requests), len(secondary.requests)) == (1, 0)


async def test_a_non_streaming_answer_cut_mid_stream_is_an_error_not_a_second_answer(
    fallback_suite: Suite, primary_and_secondary: tuple[FakeUpstream, FakeUpstream]
) -> None:
    # Past the first token the provider generated (and charges for) output: the answer does not
    # start over elsewhere (may_restart), in either mode, so no generation goes unrecorded.
    primary, secondary = primary_and_secondary
    primary.push(transcript_reply(cut_after=len(TEXT.body) // 2))
    secondary.push(transcript_reply())
    client = fallback_suite.client.with_options(max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="routed", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert len(secondary.requests) == 0


async def test_a_streaming_answer_cut_after_its_first_token_is_an_error_not_a_second_answer(
    fallback_suite: Suite, primary_and_secondary: tuple[FakeUpstream, FakeUpstream]
) -> None:
    primary, secondary = primary_and_secondary
    primary.push(transcript_reply(cut_after=len(TEXT.body) // 2))
    secondary.push(transcript_reply())
    stream = await fallback_suite.client.chat.completions.create(
        model="routed", messages=MESSAGES, stream=True
    )
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass
    assert len(secondary.requests) == 0
