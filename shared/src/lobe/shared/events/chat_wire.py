"""The hot reply frames as msgspec structs: what the chat worker encodes a delta with, and what the
gateway decodes one into (`decode_reply`).

A delta is built, encoded and decoded once per token; a pydantic model with validation costs
several times what a msgspec struct does. These structs are the same frames as the catalog's pydantic models in
lobe.shared.events.chat (field names, optionality, bounds), not a second contract:
shared/tests/test_chat_wire.py checks that each decodes what the other encodes, both ways, for the
single `delta` frame as for the `deltas` frame. A field added to one must be added to the other.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from pydantic import ValidationError

from lobe.shared.events.chat import (
    AcceptedFrame,
    DeltaFrame,
    DeltasFrame,
    DoneFrame,
    ErrorFrame,
    HeartbeatFrame,
    Route,
    ToolCallDelta,
    UsageFrame,
    decode_frame,
)

NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class WireRoute(msgspec.Struct, frozen=True):
    """chat.Route."""

    deployment: str
    provider: str
    model: str
    attempts: Annotated[int, msgspec.Meta(ge=1)]

    @classmethod
    def of(cls, route: Route) -> WireRoute:
        return cls(route.deployment, route.provider, route.model, route.attempts)


class WireToolCall(msgspec.Struct, frozen=True, omit_defaults=True):
    """chat.ToolCallDelta."""

    index: NonNegative
    id: str | None = None
    name: str | None = None
    arguments: str = ""

    @classmethod
    def of(cls, call: ToolCallDelta) -> WireToolCall:
        return cls(call.index, call.id, call.name, call.arguments)


class WireDelta(msgspec.Struct, frozen=True, omit_defaults=True, tag_field="type", tag="delta"):
    """chat.DeltaFrame."""

    request_id: str
    seq: NonNegative
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[WireToolCall] | None = None
    route: WireRoute | None = None


class WireDeltas(msgspec.Struct, frozen=True, tag_field="type", tag="deltas"):
    """chat.DeltasFrame: `seq` is the first delta's."""

    request_id: str
    seq: NonNegative
    deltas: Annotated[list[WireDelta], msgspec.Meta(min_length=1)]


ENCODE = msgspec.json.Encoder().encode


class _Deferred(msgspec.Struct, tag_field="type"):
    """A frame of another type: only its tag is read here, and the catalog's pydantic model
    decodes it (a few per answer: the accept, the usage, the end, heartbeats)."""


class _Accepted(_Deferred, tag="accepted"):
    pass


class _Heartbeat(_Deferred, tag="heartbeat"):
    pass


class _Usage(_Deferred, tag="usage"):
    pass


class _Done(_Deferred, tag="done"):
    pass


class _Error(_Deferred, tag="error"):
    pass


_DECODE_REPLY = msgspec.json.Decoder(
    WireDelta | WireDeltas | _Accepted | _Heartbeat | _Usage | _Done | _Error
).decode
ReplyWire = WireDelta | WireDeltas | AcceptedFrame | HeartbeatFrame | UsageFrame | DoneFrame | ErrorFrame
# What a frame that does not decode raises: msgspec's (not JSON, an unknown type, a bad delta) or
# pydantic's (a bad frame of the other types).
MALFORMED_FRAME = (msgspec.DecodeError, ValidationError)


def decode_reply(data: bytes) -> ReplyWire:
    """A `chat.reply` frame: a delta or deltas as the structs, the rest as the catalog's models;
    a malformed frame raises one of MALFORMED_FRAME."""
    frame: WireDelta | WireDeltas | _Deferred = _DECODE_REPLY(data)
    if isinstance(frame, _Deferred):
        deferred = decode_frame(data)
        assert not isinstance(deferred, DeltaFrame | DeltasFrame)  # their tags decoded as structs
        return deferred
    return frame


def malformation(exc: msgspec.DecodeError | ValidationError) -> str:
    """Where a frame went wrong, for the error that ends its answer."""
    if isinstance(exc, ValidationError):
        return str(exc.errors()[0]["loc"])
    return str(exc)
