"""ChatCompletionRequest: what clients may send, and the field named when they may not."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from lobe.shared.chat_schema import (
    REJECTED_PARAMETERS,
    ChatCompletionRequest,
    ImagePart,
    NamedToolChoice,
    ResponseFormatJsonSchema,
    TextPart,
)


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}], **extra}


def locs(exc: pytest.ExceptionInfo[ValidationError]) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in exc.value.errors()}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("logprobs", True),
        ("top_logprobs", 3),
        ("logit_bias", {"50256": -100}),
        ("audio", {"voice": "alloy", "format": "wav"}),
        ("modalities", ["text", "audio"]),
        ("prediction", {"type": "content", "content": "x"}),
        ("web_search_options", {}),
    ],
)
def test_unsupported_parameter_is_rejected_naming_it(name: str, value: Any) -> None:
    with pytest.raises(ValidationError) as exc:
        ChatCompletionRequest.model_validate(body(**{name: value}))
    assert locs(exc) == {name}
    assert "not supported" in str(exc.value)


def test_every_rejected_parameter_is_covered_by_the_test_above() -> None:
    assert {
        "logprobs",
        "top_logprobs",
        "logit_bias",
        "audio",
        "modalities",
        "prediction",
        "web_search_options",
    } == REJECTED_PARAMETERS


def test_unsupported_parameter_sent_as_null_or_false_is_accepted() -> None:
    request = ChatCompletionRequest.model_validate(body(logprobs=False, audio=None))
    assert "logprobs" not in request.model_dump()


def test_n_greater_than_one_is_rejected_naming_n() -> None:
    with pytest.raises(ValidationError) as exc:
        ChatCompletionRequest.model_validate(body(n=2))
    assert locs(exc) == {"n"}


def test_unknown_vendor_fields_are_dropped() -> None:
    request = ChatCompletionRequest.model_validate(body(x_vendor_hint="fast"))
    assert "x_vendor_hint" not in request.model_dump()


def test_multi_part_user_content_is_accepted() -> None:
    content = [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
    ]
    request = ChatCompletionRequest.model_validate(body(messages=[{"role": "user", "content": content}]))
    parts = request.messages[0].content
    assert isinstance(parts, list)
    assert isinstance(parts[0], TextPart)
    assert isinstance(parts[1], ImagePart)
    assert parts[1].image_url.detail == "low"


def test_unknown_content_part_type_is_rejected_naming_its_position() -> None:
    content = [{"type": "input_video", "video": "x"}]
    with pytest.raises(ValidationError) as exc:
        ChatCompletionRequest.model_validate(body(messages=[{"role": "user", "content": content}]))
    assert any(loc.startswith("messages.0.user.content") for loc in locs(exc))


def test_tools_tool_choice_and_tool_round_trip_are_accepted() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"c":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
    ]
    tools = [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Current weather",
                "parameters": {"type": "object", "properties": {"c": {"type": "string"}}},
                "strict": True,
            },
        }
    ]
    request = ChatCompletionRequest.model_validate(
        body(
            messages=messages, tools=tools, tool_choice={"type": "function", "function": {"name": "weather"}}
        )
    )
    assert isinstance(request.tool_choice, NamedToolChoice)
    assert request.tool_choice.function.name == "weather"
    assert request.tools is not None
    assert request.tools[0].function.name == "weather"
    for choice in ("none", "auto", "required"):
        assert (
            ChatCompletionRequest.model_validate(body(tools=tools, tool_choice=choice)).tool_choice == choice
        )


def test_invalid_tool_name_is_rejected_naming_it() -> None:
    tools = [{"type": "function", "function": {"name": "has spaces"}}]
    with pytest.raises(ValidationError) as exc:
        ChatCompletionRequest.model_validate(body(tools=tools))
    assert locs(exc) == {"tools.0.function.name"}


def test_response_format_json_schema_is_accepted_with_its_schema() -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
    }
    request = ChatCompletionRequest.model_validate(body(response_format=fmt))
    assert isinstance(request.response_format, ResponseFormatJsonSchema)
    assert request.response_format.json_schema.schema_ == {"type": "object"}
    dumped = request.model_dump(by_alias=True, exclude_none=True)
    assert dumped["response_format"]["json_schema"]["schema"] == {"type": "object"}


def test_unknown_response_format_type_is_rejected() -> None:
    with pytest.raises(ValidationError) as exc:
        ChatCompletionRequest.model_validate(body(response_format={"type": "yaml"}))
    assert locs(exc) == {"response_format"}


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": -0.1}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"messages": []}, "messages"),
        ({"model": ""}, "model"),
    ],
)
def test_out_of_range_values_are_rejected_naming_the_field(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        ChatCompletionRequest.model_validate(body(**extra))
    assert locs(exc) == {field}


def test_unknown_role_is_rejected() -> None:
    with pytest.raises(ValidationError) as exc:
        ChatCompletionRequest.model_validate(body(messages=[{"role": "robot", "content": "beep"}]))
    assert locs(exc) == {"messages.0"}


def test_more_than_four_stop_sequences_are_rejected() -> None:
    with pytest.raises(ValidationError, match="at most 4"):
        ChatCompletionRequest.model_validate(body(stop=["a", "b", "c", "d", "e"]))


def test_output_token_limit_prefers_max_completion_tokens() -> None:
    request = ChatCompletionRequest.model_validate(body(max_tokens=100, max_completion_tokens=50))
    assert request.output_token_limit == 50
    assert ChatCompletionRequest.model_validate(body(max_tokens=100)).output_token_limit == 100


def test_stream_options_include_usage_is_read() -> None:
    request = ChatCompletionRequest.model_validate(body(stream=True, stream_options={"include_usage": True}))
    assert request.wants_usage_chunk
    assert not ChatCompletionRequest.model_validate(body(stream=True)).wants_usage_chunk


def test_request_round_trips_through_json() -> None:
    request = ChatCompletionRequest.model_validate(
        body(temperature=0.2, seed=7, reasoning_effort="low", metadata={"k": "v"}, stop="END")
    )
    again = ChatCompletionRequest.model_validate_json(request.model_dump_json(by_alias=True))
    assert again == request
