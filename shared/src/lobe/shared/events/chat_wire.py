"""The hot reply frames as msgspec structs: what the chat worker encodes a delta with.

A delta is built and encoded once per token; a pydantic model with validation costs several times
what a msgspec struct does. These structs are the same frames as the catalog's pydantic models in
lobe.shared.events.chat (field names, optionality, bounds), not a second contract:
shared/tests/test_chat_wire.py checks that each decodes what the other encodes, both ways, for the
single `delta` frame as for the `deltas` frame. A field added to one must be added to the other.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from lobe.shared.events.chat import Route, ToolCallDelta

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
