"""Event models: bad payloads are rejected naming the field; good ones round-trip."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from pydantic import ValidationError

from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.billing import BudgetDecision, LimitExceeded
from lobe.shared.events.chat import (
    REPLY_FRAME,
    AcceptedFrame,
    Caller,
    ChatRequested,
    DeltaFrame,
    DoneFrame,
    ErrorFrame,
    TokenUsage,
    ToolCallDelta,
    UsageFrame,
    decode_frame,
)
from lobe.shared.events.usage import UsageRecorded, usage_event


def usage_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "request_id": "req-1",
        "user_id": "user-1",
        "provider": "openai",
        "deployment": "openai-main",
        "model": "gpt-4o-mini",
        "usage": {"prompt_tokens": 12, "completion_tokens": 34},
        "status": "ok",
        "duration_ms": 812.5,
    }
    payload.update(overrides)
    return payload


def error_locs(exc: pytest.ExceptionInfo[ValidationError]) -> list[str]:
    return [".".join(str(p) for p in e["loc"]) for e in exc.value.errors()]


def test_negative_token_count_is_rejected_naming_the_nested_field() -> None:
    body = json.dumps(usage_payload(usage={"prompt_tokens": -1, "completion_tokens": 3}))
    with pytest.raises(ValidationError) as exc:
        UsageRecorded.decode(body)
    assert error_locs(exc) == ["usage.prompt_tokens"]


def test_missing_request_id_is_rejected_naming_it() -> None:
    payload = usage_payload()
    del payload["request_id"]
    with pytest.raises(ValidationError) as exc:
        UsageRecorded.decode(json.dumps(payload))
    assert error_locs(exc) == ["request_id"]


def test_empty_request_id_is_rejected() -> None:
    with pytest.raises(ValidationError) as exc:
        UsageRecorded.decode(json.dumps(usage_payload(request_id="")))
    assert error_locs(exc) == ["request_id"]


def test_unknown_status_is_rejected_naming_it() -> None:
    with pytest.raises(ValidationError) as exc:
        UsageRecorded.decode(json.dumps(usage_payload(status="exploded")))
    assert error_locs(exc) == ["status"]


def test_unknown_fields_are_ignored_by_tolerant_readers() -> None:
    event = UsageRecorded.decode(json.dumps(usage_payload(added_in_a_later_version=True)))
    assert not hasattr(event, "added_in_a_later_version")
    assert event.request_id == "req-1"


def test_usage_recorded_round_trips_through_the_wire_format() -> None:
    event = UsageRecorded.model_validate(usage_payload(ttft_ms=120.0, stream=True))
    decoded = UsageRecorded.decode(event.encode())
    assert decoded == event
    assert decoded.usage.total_tokens == 46
    assert decoded.event_id == event.event_id
    assert decoded.occurred_at == event.occurred_at


def test_the_usage_event_factory_names_the_request_its_caller_and_the_asked_model() -> None:
    body = ChatCompletionRequest.model_validate(
        {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    )
    caller = Caller(user_id="user-1", api_key_id="key-1", plan="free")
    event = usage_event(
        "req-1",
        caller,
        body,
        time.monotonic() - 0.25,  # arrived a quarter of a second ago
        provider="openai",
        deployment="openai-east",
        usage=TokenUsage(prompt_tokens=3, completion_tokens=2),
        status="ok",
        error_code=None,
        served_model="gpt-4o-2024-08-06",
    )
    assert (event.request_id, event.user_id, event.api_key_id) == ("req-1", "user-1", "key-1")
    assert (event.model, event.priced_model, event.stream) == ("gpt-4o", "gpt-4o-2024-08-06", True)
    assert 250 <= event.duration_ms < 60_000
    assert UsageRecorded.decode(event.encode()) == event


def test_envelope_defaults_give_each_event_its_own_id_and_version_one() -> None:
    first = LimitExceeded(request_id="r", user_id="u", limit="cost", period="2026-11", used=5, allowed=4)
    second = LimitExceeded(request_id="r", user_id="u", limit="cost", period="2026-11", used=5, allowed=4)
    assert first.event_id != second.event_id
    assert first.schema_version == 1
    assert first.occurred_at.tzinfo is not None


def test_events_are_immutable() -> None:
    event = UsageRecorded.model_validate(usage_payload())
    with pytest.raises(ValidationError):
        event.user_id = "someone-else"  # type: ignore[misc]


def test_budget_decision_rejects_negative_reservation() -> None:
    with pytest.raises(ValidationError) as exc:
        BudgetDecision.decode(json.dumps({"request_id": "r", "admitted": True, "reserved_usd": -0.01}))
    assert error_locs(exc) == ["reserved_usd"]


@pytest.mark.parametrize(
    "frame",
    [
        AcceptedFrame(request_id="r", seq=0, worker_id="w-1"),
        DeltaFrame(request_id="r", seq=1, content="Hel", tool_calls=[ToolCallDelta(index=0, name="f")]),
        UsageFrame(request_id="r", seq=2, usage={"prompt_tokens": 1, "completion_tokens": 2}, cost_usd=0.001),
        DoneFrame(request_id="r", seq=3, finish_reason="stop", model="gpt-4o-mini", provider="openai"),
        ErrorFrame(request_id="r", seq=3, status=502, code="upstream", message="bad gateway", retryable=True),
    ],
    ids=lambda f: f.type,
)
def test_reply_frames_round_trip_to_their_own_type(frame: Any) -> None:
    decoded = decode_frame(frame.model_dump_json().encode())
    assert type(decoded) is type(frame)
    assert decoded == frame


def test_unknown_frame_type_is_rejected_naming_the_discriminator() -> None:
    with pytest.raises(ValidationError) as exc:
        decode_frame(b'{"type": "finished", "request_id": "r", "seq": 1}')
    errors = exc.value.errors()
    assert errors[0]["type"] == "union_tag_invalid"
    assert "finished" in str(exc.value)


def test_frame_missing_its_type_is_rejected() -> None:
    with pytest.raises(ValidationError) as exc:
        REPLY_FRAME.validate_python({"request_id": "r", "seq": 1})
    assert exc.value.errors()[0]["type"] == "union_tag_not_found"


def test_error_frame_status_must_be_an_http_error() -> None:
    with pytest.raises(ValidationError) as exc:
        decode_frame(
            b'{"type": "error", "request_id": "r", "seq": 1, "status": 200, "code": "x", "message": "m"}'
        )
    assert error_locs(exc) == ["error.status"]


def test_chat_requested_names_a_bad_field_inside_the_client_body() -> None:
    payload = {
        "request_id": "r",
        "caller": {"user_id": "u"},
        "reply_to": "chat.reply.r",
        "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "temperature": 3},
    }
    with pytest.raises(ValidationError) as exc:
        ChatRequested.decode(json.dumps(payload))
    assert error_locs(exc) == ["body.temperature"]


def test_chat_requested_round_trips_with_its_body() -> None:
    payload = {
        "request_id": "r",
        "caller": {"user_id": "u", "plan": "pro"},
        "reply_to": "chat.reply.r",
        "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True},
    }
    event = ChatRequested.decode(json.dumps(payload))
    assert ChatRequested.decode(event.encode()) == event
    assert event.attempt == 1
