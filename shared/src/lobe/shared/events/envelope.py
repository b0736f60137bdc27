"""The envelope every event on the bus carries.

Consumers are tolerant readers: unknown fields are ignored, so a producer may add an optional
field without a schema-version bump. Removing a field, renaming one or making one required is
an incompatible change: it needs a new `schema_version` (and the contract test says so).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Self
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field


def utc_now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Base of every message on the bus: identity, time, version, correlation."""

    # No inf or NaN: JSON cannot carry them (pydantic would write null, which no consumer reads back).
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    event_id: UUID = Field(default_factory=uuid4, description="Unique id of this event.")
    occurred_at: datetime = Field(default_factory=utc_now, description="When it happened (UTC).")
    schema_version: int = Field(default=1, ge=1, description="Version of this event's schema.")
    request_id: str = Field(min_length=1, max_length=128, description="The chat request it belongs to.")
    correlation_id: str | None = Field(
        default=None, max_length=128, description="Trace-wide id when it differs from request_id."
    )

    @classmethod
    def decode(cls, data: bytes | str) -> Self:
        """Parse one message body; raises pydantic.ValidationError naming the bad field."""
        return cls.model_validate_json(data)

    def encode(self) -> bytes:
        return self.model_dump_json(exclude_none=False).encode()
