"""The admin API's request bodies (lobe.billing.api validates them; lobe.billing.openapi
publishes their schemas). Unknown fields are refused: an admin's typo must not be ignored."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=128)
    email: str | None = Field(default=None, max_length=320)
    plan: str | None = None  # the plans file's default plan


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=128)


class PlanChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plan: str


class RoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "admin"]


class LimitsChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tokens: int | None = Field(default=None, ge=0)
    # A ledger column holds under 10^14 USD; a larger limit is a typo, not a budget.
    cost_usd: Decimal | None = Field(default=None, ge=0, le=Decimal(10) ** 12, decimal_places=4)
    requests: int | None = Field(default=None, ge=0)
    rate_tier: str | None = None


class UsageResetAsk(BaseModel):
    """POST …/reset-usage: no fields (an empty body or `{}`); a typo'd field is refused, not ignored."""

    model_config = ConfigDict(extra="forbid")
