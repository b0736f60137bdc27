"""Routing domain: the chat workers' shared circuit breakers announce their transitions.

One breaker per deployment, shared by every worker (its state lives in the routing store, see
docs/routing.md). Exactly one worker wins each transition, and that worker publishes the fact:
`opened` when a deployment failed too often (no traffic during the cooldown), `half_opened` when
the one probe request is sent after the cooldown, `closed` when the probe succeeded.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lobe.shared.events.envelope import Event

ROUTING_BREAKER_OPENED = "routing.breaker.opened"
ROUTING_BREAKER_HALF_OPENED = "routing.breaker.half_opened"
ROUTING_BREAKER_CLOSED = "routing.breaker.closed"

BreakerState = Literal["closed", "open", "half_open"]


class BreakerChanged(Event):
    """A deployment's breaker changed state. `request_id` is the request whose attempt caused it."""

    deployment: str = Field(min_length=1, max_length=128)
    provider: str = Field(min_length=1, max_length=64)
    state: BreakerState = Field(description="The state it is in now.")
    previous: BreakerState
    failures: int = Field(ge=0, description="Failures counted in the window when it opened.")
    cooldown_s: float = Field(ge=0, description="How long it stays open before one probe.")
    reason: str | None = Field(default=None, description="The error code of the failure that opened it.")
    worker_id: str = Field(description="The worker that made the transition.")
