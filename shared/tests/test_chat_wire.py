"""The msgspec delta frames (chat_wire) and the catalog's pydantic models are one contract: each
decodes what the other encodes, to an equal frame, for the single `delta` frame as for `deltas`;
the gateway's decoder (`decode_reply`) reads every reply frame as the catalog does, and refuses
what it refuses."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from lobe.shared.events.chat import (
    AcceptedFrame,
    DeltaFrame,
    DeltasFrame,
    DoneFrame,
    ErrorFrame,
    HeartbeatFrame,
    Route,
    TokenUsage,
    ToolCallDelta,
    UsageFrame,
    decode_frame,
)
from lobe.shared.events.chat_wire import (
    ENCODE,
    MALFORMED_FRAME,
    WireDelta,
    WireDeltas,
    WireRoute,
    WireToolCall,
    decode_reply,
    malformation,
)

WIRE_DECODE = msgspec.json.Decoder(WireDelta | WireDeltas).decode
PAIRS: list[tuple[type[msgspec.Struct], type[BaseModel]]] = [
    (WireDelta, DeltaFrame),
    (WireDeltas, DeltasFrame),
    (WireToolCall, ToolCallDelta),
    (WireRoute, Route),
]

text = st.text(max_size=12)
maybe_text = st.none() | text
routes = st.builds(Route, deployment=text, provider=text, model=text, attempts=st.integers(1, 5))
tool_calls = st.builds(ToolCallDelta, index=st.integers(0, 3), id=maybe_text, name=maybe_text, arguments=text)


@st.composite
def delta_frames(draw: st.DrawFn, seq: int | None = None) -> DeltaFrame:
    return DeltaFrame(
        request_id=draw(st.text(min_size=1, max_size=12)),
        seq=draw(st.integers(0, 10_000)) if seq is None else seq,
        content=draw(maybe_text),
        reasoning_content=draw(maybe_text),
        tool_calls=draw(st.none() | st.lists(tool_calls, min_size=1, max_size=2)),
        route=draw(st.none() | routes),
    )


@st.composite
def deltas_frames(draw: st.DrawFn) -> DeltasFrame:
    first = draw(st.integers(1, 10_000))
    count = draw(st.integers(1, 4))
    deltas = [draw(delta_frames(seq=first + n)) for n in range(count)]
    return DeltasFrame(request_id="r", seq=first, deltas=deltas)


frames = delta_frames() | deltas_frames()


@given(frames, st.booleans())
def test_a_pydantic_frame_decodes_with_msgspec_and_comes_back_equal(
    frame: DeltaFrame | DeltasFrame, exclude_none: bool
) -> None:
    # exclude_none: how the worker encoded deltas before 3.10.0; with nulls: any other writer.
    wire = WIRE_DECODE(frame.model_dump_json(exclude_none=exclude_none))
    assert wire.seq == frame.seq
    assert decode_frame(ENCODE(wire)) == frame


@given(frames)
def test_a_msgspec_frame_decodes_with_pydantic_and_comes_back_equal(frame: DeltaFrame | DeltasFrame) -> None:
    wire = WIRE_DECODE(frame.model_dump_json())
    decoded = decode_frame(ENCODE(wire))
    assert type(decoded) is type(frame)
    assert WIRE_DECODE(decoded.model_dump_json()) == wire


@pytest.mark.parametrize(("struct", "model"), PAIRS, ids=lambda t: t.__name__)
def test_the_structs_have_the_models_fields_with_the_same_defaults(
    struct: type[msgspec.Struct], model: type[BaseModel]
) -> None:
    info = msgspec.structs.fields(struct)
    fields = {f.name: (f.required, None if f.required else f.default) for f in info}
    if struct.__struct_config__.tag_field:
        fields["type"] = (False, struct.__struct_config__.tag)
    expected = {
        name: (
            spec.is_required(),
            None if spec.is_required() else spec.get_default(call_default_factory=True),
        )
        for name, spec in model.model_fields.items()
    }
    assert fields == expected


@pytest.mark.parametrize(
    "body",
    [
        {"type": "delta", "request_id": "r", "seq": -1},
        {"type": "delta", "request_id": "r", "seq": 1, "tool_calls": [{"index": -1}]},
        {
            "type": "delta",
            "request_id": "r",
            "seq": 1,
            "route": {"deployment": "d", "provider": "p", "model": "m", "attempts": 0},
        },
        {"type": "deltas", "request_id": "r", "seq": 1, "deltas": []},
        {"type": "deltas", "request_id": "r", "seq": 1},
    ],
    ids=["negative seq", "negative tool index", "no attempt", "no deltas", "deltas missing"],
)
def test_both_refuse_the_same_bad_frames(body: dict[str, Any]) -> None:
    data = msgspec.json.encode(body)
    with pytest.raises(ValidationError):
        decode_frame(data)
    with pytest.raises(msgspec.ValidationError):
        WIRE_DECODE(data)


@given(frames)
def test_the_gateways_decoder_reads_deltas_as_the_structs(frame: DeltaFrame | DeltasFrame) -> None:
    data = frame.model_dump_json().encode()
    assert decode_reply(data) == WIRE_DECODE(data)


OTHER_FRAMES = [
    AcceptedFrame(request_id="r", seq=0, worker_id="w1"),
    HeartbeatFrame(request_id="r", seq=3),
    UsageFrame(request_id="r", seq=4, usage=TokenUsage(prompt_tokens=3, completion_tokens=2), cost_usd=0.5),
    DoneFrame(request_id="r", seq=5, finish_reason="stop", model="m", provider="p"),
    ErrorFrame(request_id="r", seq=5, status=429, code="rate_limited", message="slow down"),
]


@pytest.mark.parametrize("frame", OTHER_FRAMES, ids=lambda f: f.type)
def test_the_gateways_decoder_reads_the_other_frames_as_the_catalogs_models(frame: BaseModel) -> None:
    assert decode_reply(frame.model_dump_json().encode()) == frame


@pytest.mark.parametrize(
    "data",
    [
        b"{not json",
        b'{"type": "teleport", "request_id": "r", "seq": 1}',
        b'{"type": "delta", "request_id": "r"}',
        b'{"type": "delta", "request_id": "r", "seq": "one"}',
        b'{"type": "usage", "request_id": "r", "seq": 1}',
        b'{"type": "error", "request_id": "r", "seq": 1, "status": 200, "code": "c", "message": "m"}',
    ],
    ids=[
        "not json",
        "unknown type",
        "delta without seq",
        "seq not a number",
        "usage without usage",
        "error 200",
    ],
)
def test_the_gateways_decoder_refuses_what_the_catalog_refuses(data: bytes) -> None:
    with pytest.raises(ValidationError):
        decode_frame(data)
    with pytest.raises(MALFORMED_FRAME) as caught:
        decode_reply(data)
    assert malformation(caught.value)  # says where, for the error that ends the answer
