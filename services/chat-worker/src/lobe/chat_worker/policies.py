"""The routing knobs of the model file: how a model picks among its deployments, how often a
deployment is retried, when its breaker opens, and its per-window limits (docs/routing.md)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Strategy = Literal["ordered", "weighted", "least_in_flight", "lowest_latency", "lowest_cost", "headroom"]


class RetryPolicy(BaseModel):
    """Retries of the same deployment, before the first token only, within the request's deadline."""

    model_config = ConfigDict(extra="forbid")

    max_retries: int = Field(
        default=0, ge=0, le=10, description="Extra attempts on one deployment (0: clients retry themselves)."
    )
    backoff_base_s: float = Field(default=0.5, gt=0, description="First backoff; doubles per retry.")
    backoff_max_s: float = Field(default=8.0, gt=0, description="Cap of one backoff.")
    max_wait_s: float = Field(
        default=10.0, ge=0, description="A longer Retry-After moves on to the next deployment instead."
    )


class BreakerPolicy(BaseModel):
    """Opens after `failures` failures within `window_s`; no traffic for `cooldown_s`; then one probe."""

    model_config = ConfigDict(extra="forbid")

    failures: int = Field(default=5, ge=0, description="0 disables the breaker.")
    window_s: float = Field(default=60.0, gt=0)
    cooldown_s: float = Field(default=30.0, gt=0)


class Limits(BaseModel):
    """A provider account's quota: requests and tokens per minute, counted by every worker together.

    Counted in fixed windows of `window_s` seconds (wall clock, the same for every worker); a
    window allows `rpm * window_s / 60` requests. Providers that enforce a per-minute quota over
    shorter periods (Azure OpenAI: 10 s) are matched by a shorter window.
    """

    model_config = ConfigDict(extra="forbid")

    rpm: int | None = Field(default=None, ge=1, description="Requests per minute.")
    tpm: int | None = Field(default=None, ge=1, description="Tokens (prompt + completion) per minute.")
    window_s: float = Field(default=60.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _window_allows_one(self) -> Limits:
        for name in ("rpm", "tpm"):
            if getattr(self, name) is not None and self.per_window(getattr(self, name)) < 1:
                raise ValueError(f"{name} allows less than one per {self.window_s}s window")
        return self

    def per_window(self, per_minute: int) -> int:
        return math.floor(per_minute * self.window_s / 60 + 1e-9)

    @property
    def requests(self) -> int | None:
        return None if self.rpm is None else self.per_window(self.rpm)

    @property
    def tokens(self) -> int | None:
        return None if self.tpm is None else self.per_window(self.tpm)
