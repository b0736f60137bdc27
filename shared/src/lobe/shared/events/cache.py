"""Cache domain: the gateways' response cache (memory per replica, then a shared Redis)."""

from __future__ import annotations

from pydantic import Field

from lobe.shared.events.envelope import Event

# Every gateway replica subscribes (no queue group): each drops the matching answers it holds in
# memory. The shared Redis tier is cleared by the replica that received the admin call.
CACHE_RESPONSE_INVALIDATED = "cache.response.invalidated"


class ResponsesInvalidated(Event):
    """`cache.response.invalidated`: cached answers an admin invalidated. Both None: all of them."""

    user_id: str | None = Field(default=None, max_length=128, description="Only this user's answers.")
    model: str | None = Field(default=None, max_length=256, description="Only answers of this model.")
