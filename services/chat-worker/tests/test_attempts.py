"""A request's walk through its deployments before the first token: a transient failure retried on
the same deployment (Retry-After honoured, within the request's deadline), a broken deployment left
for the next one, then the model's fallbacks, and a prompt too long for the window sent straight to
the larger-context model. None of a failed attempt reaches the client: fallbacks happen before the
first delta only, so there is no partial output to take back (the design has no retry-reset frame);
the answer's first delta names the deployment and the attempt count."""

from __future__ import annotations

import json

from lobe.chat_worker.deployments import RoutedModel
from lobe.chat_worker.policies import RetryPolicy
from lobe.devtools.fake_upstream import FakeUpstream, Reply
from lobe.devtools.provider_fixtures import load
from lobe.devtools.suite.fixtures import StartWorker
from lobe.shared.events.chat import DoneFrame, ErrorFrame, Route

from .support import Answer, ScriptedGateway, body, called, openai_at, routing
from .test_run import after_events

TEXT = load("openai/chat_stream_text.sse")
ANSWER = TEXT.expected["choices"][0]["text"]
RATE_LIMITED = load("openai_compatible/openrouter_error_429.json")
FAST_RETRY = RetryPolicy(max_retries=2, backoff_base_s=0.01, backoff_max_s=0.02)


def openai_error(status: int, code: str, message: str, **headers: str) -> Reply:
    document = {"error": {"message": message, "type": "server_error", "param": None, "code": code}}
    return Reply(json.dumps(document).encode(), status, "application/json", headers=headers)


OVERLOADED = openai_error(503, "overloaded", "The server is overloaded.")
BAD_KEY = openai_error(401, "invalid_api_key", "Incorrect API key provided.")
TOO_LONG = openai_error(400, "context_length_exceeded", "This model's maximum context length is 8192 tokens.")


def answered_by(answer: Answer) -> Route:
    """The answer is whole and the text of one attempt only; who answered, per its first delta."""
    assert isinstance(answer.terminal, DoneFrame), answer.terminal
    assert answer.text == ANSWER
    route: Route | None = answer.deltas[0].route
    assert route is not None
    return route


async def test_a_stream_cut_before_its_first_token_is_retried_and_only_the_retry_reaches_the_client(
    chat_worker: StartWorker, scripted_gateway: ScriptedGateway, upstream: FakeUpstream
) -> None:
    upstream.push(TEXT.reply(cut_after=after_events(TEXT.body, 1)))  # the role chunk, no text yet
    upstream.push(TEXT.reply())
    await chat_worker(
        routing(RoutedModel(name="chat", deployments=[openai_at("oa", upstream)], retry=FAST_RETRY))
    )
    answer = await scripted_gateway.ask(body("chat"))
    route = answered_by(answer)
    assert (route.deployment, route.attempts) == ("oa", 2)
    assert called(upstream) == ["oa", "oa"]
    [event] = await scripted_gateway.usage_of(answer.request_id)
    assert (event.status, event.attempts, event.deployment) == ("ok", 2, "oa")


async def test_a_rate_limit_is_retried_after_the_providers_retry_after(
    chat_worker: StartWorker, scripted_gateway: ScriptedGateway, upstream: FakeUpstream
) -> None:
    upstream.push(Reply(RATE_LIMITED.body, 429, "application/json", headers={"Retry-After": "0.3"}))
    upstream.push(TEXT.reply())
    await chat_worker(
        routing(RoutedModel(name="chat", deployments=[openai_at("oa", upstream)], retry=FAST_RETRY))
    )
    answer = await scripted_gateway.ask(body("chat"))
    assert answered_by(answer).attempts == 2
    first, second = upstream.requests
    assert second.at - first.at >= 0.3  # never early, whatever the backoff would have been


async def test_retries_end_at_max_retries_then_the_next_deployment_answers(
    chat_worker: StartWorker, scripted_gateway: ScriptedGateway, upstream: FakeUpstream
) -> None:
    for _ in range(3):
        upstream.push(OVERLOADED)
    upstream.push(TEXT.reply())
    model = RoutedModel(
        name="chat", deployments=[openai_at("oa", upstream), openai_at("ob", upstream)], retry=FAST_RETRY
    )
    await chat_worker(routing(model))
    answer = await scripted_gateway.ask(body("chat"))
    route = answered_by(answer)
    assert (route.deployment, route.attempts) == ("ob", 4)
    assert called(upstream) == ["oa", "oa", "oa", "ob"]


async def test_a_deployment_that_refuses_its_key_is_not_retried_and_the_next_one_answers(
    chat_worker: StartWorker, scripted_gateway: ScriptedGateway, upstream: FakeUpstream
) -> None:
    upstream.push(BAD_KEY)
    upstream.push(TEXT.reply())
    model = RoutedModel(
        name="chat", deployments=[openai_at("oa", upstream), openai_at("ob", upstream)], retry=FAST_RETRY
    )
    await chat_worker(routing(model))
    route = answered_by(await scripted_gateway.ask(body("chat")))
    assert (route.deployment, route.provider, route.attempts) == ("ob", "openai", 2)
    assert called(upstream) == ["oa", "ob"]


async def test_a_retry_after_longer_than_max_wait_moves_to_the_next_deployment_at_once(
    chat_worker: StartWorker, scripted_gateway: ScriptedGateway, upstream: FakeUpstream
) -> None:
    upstream.push(Reply(RATE_LIMITED.body, 429, "application/json", headers={"Retry-After": "30"}))
    upstream.push(TEXT.reply())
    retry = RetryPolicy(max_retries=2, max_wait_s=1)
    model = RoutedModel(
        name="chat", deployments=[openai_at("oa", upstream), openai_at("ob", upstream)], retry=retry
    )
    await chat_worker(routing(model))
    assert answered_by(await scripted_gateway.ask(body("chat"))).deployment == "ob"
    assert called(upstream) == ["oa", "ob"]
    first, second = upstream.requests
    assert second.at - first.at < 1  # not after the 30 s the provider asked of that deployment


async def test_a_retry_that_would_pass_the_requests_deadline_is_not_made(
    chat_worker: StartWorker, scripted_gateway: ScriptedGateway, upstream: FakeUpstream
) -> None:
    upstream.push(Reply(RATE_LIMITED.body, 429, "application/json", headers={"Retry-After": "2"}))
    upstream.default = TEXT.reply()
    await chat_worker(
        routing(RoutedModel(name="chat", deployments=[openai_at("oa", upstream)], retry=FAST_RETRY))
    )
    answer = await scripted_gateway.ask(body("chat"), deadline_ms=1000)
    assert isinstance(answer.terminal, ErrorFrame)
    assert answer.terminal.status == 429
    assert called(upstream) == ["oa"]
    [event] = await scripted_gateway.usage_of(answer.request_id)
    assert (event.status, event.attempts) == ("error", 1)


async def test_when_every_deployment_of_a_model_fails_its_fallback_model_answers(
    chat_worker: StartWorker, scripted_gateway: ScriptedGateway, upstream: FakeUpstream
) -> None:
    upstream.push(OVERLOADED)
    upstream.push(TEXT.reply())
    primary = RoutedModel(name="chat", deployments=[openai_at("oa", upstream)], fallbacks=["spare"])
    spare = RoutedModel(name="spare", deployments=[openai_at("sp", upstream)])
    await chat_worker(routing(primary, spare))
    answer = await scripted_gateway.ask(body("chat"))
    route = answered_by(answer)
    assert (route.model, route.deployment, route.attempts) == ("spare", "sp", 2)
    assert upstream.last.json["model"] == "upstream-model"
    [event] = await scripted_gateway.usage_of(answer.request_id)
    assert (event.model, event.deployment) == ("chat", "sp")  # billed as asked, served by the spare


async def test_a_prompt_too_long_goes_straight_to_the_larger_context_model(
    chat_worker: StartWorker, scripted_gateway: ScriptedGateway, upstream: FakeUpstream
) -> None:
    upstream.push(TOO_LONG)
    upstream.push(TEXT.reply())
    small = RoutedModel(
        name="chat",
        deployments=[openai_at("small-a", upstream), openai_at("small-b", upstream)],
        context_fallback="chat-long",
        retry=FAST_RETRY,
    )
    large = RoutedModel(name="chat-long", deployments=[openai_at("large", upstream)])
    await chat_worker(routing(small, large))
    route = answered_by(await scripted_gateway.ask(body("chat")))
    assert (route.model, route.deployment) == ("chat-long", "large")
    assert called(upstream) == ["small-a", "large"]  # the same window elsewhere would refuse it too


async def test_when_every_deployment_fails_the_client_gets_one_error_frame_and_one_usage_event(
    chat_worker: StartWorker, scripted_gateway: ScriptedGateway, upstream: FakeUpstream
) -> None:
    upstream.default = OVERLOADED
    model = RoutedModel(name="chat", deployments=[openai_at("oa", upstream), openai_at("ob", upstream)])
    await chat_worker(routing(model))
    answer = await scripted_gateway.ask(body("chat"))
    assert not answer.deltas
    [error] = answer.content
    assert isinstance(error, ErrorFrame)
    assert (error.status, error.code) == (502, "upstream_error")  # the provider's failure, not ours
    assert error.route is not None
    assert (error.route.deployment, error.route.attempts) == ("ob", 2)
    assert called(upstream) == ["oa", "ob"]
    [event] = await scripted_gateway.usage_of(answer.request_id)
    assert (event.status, event.attempts, event.error_code) == ("error", 2, "overloaded")
