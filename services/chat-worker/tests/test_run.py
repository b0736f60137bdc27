"""One answer's frames and its usage event, as a worker streams them from a provider that speaks
its real wire format (the recorded transcripts, replayed by the fake upstream): a whole answer is
deltas, usage and done; an answer that fails after its first token ends in an explicit error frame,
never in a done, and either way exactly one usage event is published."""

from __future__ import annotations

from lobe.chat_worker.deployments import Deployment, RoutedModel
from lobe.chat_worker.policies import RetryPolicy
from lobe.devtools.fake_upstream import FakeUpstream, Reply
from lobe.devtools.provider_fixtures import load
from lobe.devtools.suite.fixtures import StartWorker
from lobe.shared.events.chat import DoneFrame, ErrorFrame, UsageFrame

from .support import Answer, ScriptedGateway, body, openai_at, routing

OPENAI_TEXT = load("openai/chat_stream_text.sse")
ANTHROPIC_TEXT = load("anthropic/messages_stream_text.sse")
BAD_REQUEST = load("openai/error_400_unsupported_value.json")


def after_events(data: bytes, n: int) -> int:
    """The offset just past the n-th SSE event of `data`."""
    offset = 0
    for _ in range(n):
        offset = data.index(b"\n\n", offset) + 2
    return offset


def ended_in_error(answer: Answer) -> ErrorFrame:
    """The answer streamed output, then failed explicitly: no done, no usage frame after output."""
    assert answer.deltas, "no output reached the client"
    assert isinstance(answer.terminal, ErrorFrame)
    assert not any(isinstance(f, DoneFrame | UsageFrame) for f in answer.frames)
    return answer.terminal


async def test_an_openai_answer_streams_its_text_and_the_providers_own_usage(
    chat_worker: StartWorker, scripted_gateway: ScriptedGateway, upstream: FakeUpstream
) -> None:
    upstream.push(OPENAI_TEXT.reply(seed=3, max_chunk=9))  # splits inside lines and UTF-8 sequences
    await chat_worker(routing(RoutedModel(name="chat", deployments=[openai_at("oa", upstream)])))
    answer = await scripted_gateway.ask(body("chat"))
    expected = OPENAI_TEXT.expected
    assert answer.text == expected["choices"][0]["text"]
    usage, done = answer.content[-2:]
    assert isinstance(usage, UsageFrame)
    assert (usage.usage.prompt_tokens, usage.usage.completion_tokens, usage.usage.basis) == (
        expected["usage"]["prompt_tokens"],
        expected["usage"]["completion_tokens"],
        "provider",
    )
    assert (usage.provider, usage.served_model) == ("openai", "upstream-model")
    assert isinstance(done, DoneFrame)
    assert (done.finish_reason, done.model) == ("stop", expected["models"][0])
    assert upstream.last.path == "/oa/v1/chat/completions"
    assert upstream.last.json["model"] == "upstream-model"
    [event] = await scripted_gateway.usage_of(answer.request_id)
    assert (event.status, event.provider, event.served_model, event.model) == (
        "ok",
        "openai",
        "upstream-model",
        "chat",
    )
    assert event.usage.total_tokens == expected["usage"]["total_tokens"]


async def test_an_anthropic_answer_is_relayed_as_the_same_frames(
    chat_worker: StartWorker, scripted_gateway: ScriptedGateway, upstream: FakeUpstream
) -> None:
    upstream.push(ANTHROPIC_TEXT.reply(seed=5, max_chunk=7))
    deployment = Deployment(name="an", provider="anthropic", base_url=upstream.url, model="claude-x")
    await chat_worker(routing(RoutedModel(name="chat", deployments=[deployment])))
    answer = await scripted_gateway.ask(body("chat"))
    expected = ANTHROPIC_TEXT.expected
    assert answer.text == expected["text"]
    assert isinstance(answer.terminal, DoneFrame)
    assert answer.usage is not None
    assert (answer.usage.usage.prompt_tokens, answer.usage.usage.completion_tokens) == (
        expected["usage_final"]["input_tokens"],
        expected["usage_final"]["output_tokens"],
    )
    assert upstream.last.path == "/v1/messages"
    [event] = await scripted_gateway.usage_of(answer.request_id)
    assert (event.status, event.provider) == ("ok", "anthropic")


async def test_a_connection_cut_after_the_first_token_is_an_error_frame_and_one_usage_event_never_a_retry(
    chat_worker: StartWorker, scripted_gateway: ScriptedGateway, upstream: FakeUpstream
) -> None:
    cut = after_events(OPENAI_TEXT.body, 3)  # the role chunk and two words reached the worker
    upstream.push(OPENAI_TEXT.reply(cut_after=cut))
    upstream.default = OPENAI_TEXT.reply()  # what a retry would get: it must not be asked
    model = RoutedModel(
        name="chat", deployments=[openai_at("oa", upstream)], retry=RetryPolicy(max_retries=3)
    )
    await chat_worker(routing(model))
    answer = await scripted_gateway.ask(body("chat"))
    error = ended_in_error(answer)
    assert error.status == 502
    assert answer.text == "The capital"
    assert len(upstream.requests) == 1  # output reached the client: the answer cannot start over
    [event] = await scripted_gateway.usage_of(answer.request_id)
    assert event.status == "error"
    assert event.error_code is not None
    assert event.usage.completion_tokens > 0  # what was generated is billed (estimated)
    assert event.usage.basis == "estimated"


async def test_a_stream_that_ends_without_a_finish_is_an_error_not_a_complete_answer(
    chat_worker: StartWorker, scripted_gateway: ScriptedGateway, upstream: FakeUpstream
) -> None:
    # A well-formed HTTP body that simply stops: no finish reason, no [DONE].
    upstream.push(Reply(OPENAI_TEXT.body[: after_events(OPENAI_TEXT.body, 4)]))
    await chat_worker(routing(RoutedModel(name="chat", deployments=[openai_at("oa", upstream)])))
    answer = await scripted_gateway.ask(body("chat"))
    assert ended_in_error(answer).status == 502
    assert [e.status for e in await scripted_gateway.usage_of(answer.request_id)] == ["error"]


async def test_a_request_the_provider_refuses_is_a_4xx_error_frame_tried_once(
    chat_worker: StartWorker, scripted_gateway: ScriptedGateway, upstream: FakeUpstream
) -> None:
    upstream.default = BAD_REQUEST.reply()
    model = RoutedModel(
        name="chat",
        deployments=[openai_at("oa", upstream), openai_at("ob", upstream)],
        retry=RetryPolicy(max_retries=2),
    )
    await chat_worker(routing(model))
    answer = await scripted_gateway.ask(body("chat"))
    assert not answer.deltas
    assert isinstance(answer.terminal, ErrorFrame)
    assert answer.terminal.status == 400
    assert "sk-" not in answer.terminal.message
    assert len(upstream.requests) == 1  # no other deployment would take it either
    [event] = await scripted_gateway.usage_of(answer.request_id)
    assert (event.status, event.error_code, event.deployment) == ("error", "unsupported_value", "oa")
