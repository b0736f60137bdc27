"""The Responses events and object, checked against the official openai SDK's own types: every
event must validate as the SDK's `ResponseStreamEvent` (missing fields fail), in OpenAI's order."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from lobe.gateway.responses_format import ResponseEvents
from lobe.gateway.responses_schema import ResponsesRequest
from lobe.shared.events.chat import DeltaFrame, DoneFrame, FinishReason, TokenUsage, ToolCallDelta, UsageFrame
from lobe.shared.openai_errors import ApiError

SDK_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
ASKED = ResponsesRequest.model_validate(
    {
        "model": "m",
        "input": "hi",
        "instructions": "Be brief.",
        "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}],
        "tool_choice": {"type": "function", "name": "lookup"},
        "text": {"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}}},
        "metadata": {"k": "v"},
    }
)
USAGE = UsageFrame(
    request_id="r", seq=9, usage=TokenUsage(prompt_tokens=7, completion_tokens=5, cached_tokens=2)
)


def delta(**fields: Any) -> DeltaFrame:
    return DeltaFrame(request_id="r", seq=1, **fields)


def done(reason: FinishReason = "stop") -> DoneFrame:
    return DoneFrame(request_id="r", seq=8, finish_reason=reason, model="m", provider="mock")


def checked(events: list[dict[str, Any]]) -> list[str]:
    """Each event validated as the SDK's type; their numbering; their types in order."""
    for event in events:
        SDK_EVENT.validate_python(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return [e["type"] for e in events]


def test_reasoning_text_and_a_tool_call_become_three_items_in_their_order() -> None:
    events = ResponseEvents("r", ASKED)
    frames = [
        delta(reasoning_content="Think"),
        delta(content="Hel"),
        delta(content="lo"),
        delta(tool_calls=[ToolCallDelta(index=0, id="call_a", name="lookup", arguments='{"q"')]),
        delta(tool_calls=[ToolCallDelta(index=0, arguments=':"x"}')]),
        delta(tool_calls=[ToolCallDelta(index=1, id="call_b", name="lookup", arguments="{}")]),
    ]
    out = [e for frame in frames for e in events.delta(frame)] + events.finish(done("tool_calls"), USAGE)

    kinds = checked(out)
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    added = [e["item"]["type"] for e in out if e["type"] == "response.output_item.added"]
    assert added == ["reasoning", "message", "function_call", "function_call"]
    response = Response.model_validate(out[-1]["response"])
    assert response.output_text == "Hello"
    assert [(i.call_id, i.arguments) for i in response.output if i.type == "function_call"] == [
        ("call_a", '{"q":"x"}'),
        ("call_b", "{}"),
    ]
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (
        7,
        5,
        12,
    )
    assert response.usage.input_tokens_details.cached_tokens == 2
    # The request is echoed as OpenAI echoes it.
    assert (response.instructions, response.metadata, response.store) == ("Be brief.", {"k": "v"}, False)
    assert response.tools[0].type == "function"
    assert response.text is not None
    assert response.text.format is not None
    assert response.text.format.type == "json_schema"


def test_an_empty_answer_is_one_empty_message() -> None:
    out = ResponseEvents("r", ASKED).finish(done(), None)
    checked(out)
    response = Response.model_validate(out[-1]["response"])
    assert [(i.type, response.output_text) for i in response.output] == [("message", "")]
    assert response.usage is None


@pytest.mark.parametrize(
    ("reason", "why"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
def test_an_answer_cut_short_ends_with_response_incomplete(reason: FinishReason, why: str) -> None:
    events = ResponseEvents("r", ASKED)
    out = events.delta(delta(content="partial")) + events.finish(done(reason), USAGE)
    assert checked(out)[-1] == "response.incomplete"
    response = Response.model_validate(out[-1]["response"])
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == why
    assert response.output[0].status == "incomplete"


def test_a_failure_after_output_is_an_error_event_then_response_failed() -> None:
    events = ResponseEvents("r", ASKED)
    out = events.delta(delta(content="partial")) + events.fail(
        ApiError(502, "upstream broke", "upstream_error")
    )
    kinds = checked(out)
    assert kinds[-2:] == ["error", "response.failed"]
    assert out[-2]["code"] == "upstream_error"
    failed = Response.model_validate(out[-1]["response"])
    assert failed.status == "failed"
    assert failed.error is not None
    assert (failed.error.code, failed.error.message) == ("server_error", "upstream broke")
