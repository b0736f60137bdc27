"""What a client of the deployed API relies on, checked after each staging deploy (`make e2e-staging`,
marker `staging`) and locally in `make test` (tests/e2e/deployed.py says which suite): the models
list, a streamed answer through the openai SDK, errors in OpenAI's format, rate-limit headers.
Only what any deployment shows from outside: no exact answer text, no bus, no database."""

from __future__ import annotations

import openai
import pytest

from .deployed import (
    Deployed,
    deployed_fixture,  # noqa: F401 (the fixture `deployed`)
)

pytestmark = pytest.mark.staging

MESSAGES = [{"role": "user", "content": "Staging check: answer with a short sentence."}]


async def test_the_models_list_serves_the_checked_model(deployed: Deployed) -> None:
    models = await deployed.client.models.list()
    assert deployed.model in {m.id for m in models.data}
    assert all(m.object == "model" for m in models.data)


async def test_a_streamed_answer_arrives_whole_with_one_id_a_finish_reason_and_usage(
    deployed: Deployed,
) -> None:
    stream = await deployed.client.chat.completions.create(
        model=deployed.model,
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=32,
    )
    text, finish, usage, ids = [], None, None, set()
    async for chunk in stream:
        ids.add(chunk.id)
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
        usage = chunk.usage or usage
    assert "".join(text).strip()
    assert finish in ("stop", "length")
    assert usage is not None
    assert usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert len(ids) == 1


async def test_an_unknown_model_is_404_in_openai_format(deployed: Deployed) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await deployed.client.chat.completions.create(model="no-such-model-here", messages=MESSAGES)
    assert caught.value.code == "model_not_found"


async def test_a_wrong_key_is_401_and_a_bad_field_400_naming_it(deployed: Deployed) -> None:
    wrong = openai.AsyncOpenAI(base_url=f"{deployed.base_url}/v1", api_key="sk-not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await wrong.models.list()
    await wrong.close()
    body = {"model": deployed.model, "messages": MESSAGES, "temperature": 3}
    async with deployed.http.post(
        f"{deployed.base_url}/v1/chat/completions", json=body, headers=deployed.headers()
    ) as r:
        assert r.status == 400
        error = (await r.json())["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "temperature")


async def test_answers_carry_the_rate_limit_headers_clients_read(deployed: Deployed) -> None:
    raw = await deployed.client.chat.completions.with_raw_response.create(
        model=deployed.model, messages=MESSAGES, max_tokens=8
    )
    headers = raw.headers
    limit = int(headers["x-ratelimit-limit-requests"])
    assert int(headers["RateLimit-Limit"]) == limit > 0
    assert 0 <= int(headers["x-ratelimit-remaining-requests"]) < limit  # this request counted
    assert int(headers["RateLimit-Remaining"]) == int(headers["x-ratelimit-remaining-requests"])
    assert int(headers["RateLimit-Reset"]) >= 0
    assert raw.parse().choices[0].message.content
