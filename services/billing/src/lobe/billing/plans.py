"""Plans, limits and billing periods, from the operator's plans YAML (PLANS_FILE)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lobe.shared.config_file import exact_decimal, load_yaml
from lobe.shared.events.usage import DisconnectBilling

DEFAULT_PLANS_FILE = Path(__file__).parent / "config" / "plans.yaml"
PeriodKind = Literal["month", "week", "day"]


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tokens: int | None = Field(ge=0)
    cost_usd: Decimal | None = Field(ge=0, decimal_places=4)
    requests: int | None = Field(ge=0)
    rate_tier: str = Field(min_length=1)
    # What a cancelled request costs on this plan; None: the deployment's setting, else
    # bill_partial (lobe.billing.disconnects).
    disconnect_billing: DisconnectBilling | None = None
    # Live API keys a user may hold (self-service keys: lobe.billing.own_keys); None: no cap.
    max_api_keys: int | None = Field(default=None, ge=0)

    @field_validator("cost_usd", mode="before")
    @classmethod
    def _exact(cls, value: Any) -> Any:
        return exact_decimal(value)


class PlanFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    period: PeriodKind = "month"
    default_plan: str
    plans: dict[str, Plan] = Field(min_length=1)

    @model_validator(mode="after")
    def _default_exists(self) -> PlanFile:
        if self.default_plan not in self.plans:
            raise ValueError(f"default_plan {self.default_plan!r} is not one of {sorted(self.plans)}")
        return self


def period_key(when: datetime, kind: PeriodKind = "month") -> str:
    """The period `when` (UTC) falls in; keys sort in time order within a kind."""
    if kind == "month":
        return f"{when.year:04d}-{when.month:02d}"
    if kind == "week":
        iso = when.isocalendar()
        return f"{iso.year:04d}-W{iso.week:02d}"
    return when.strftime("%Y-%m-%d")


def period_bounds(key: str, kind: PeriodKind = "month") -> tuple[datetime, datetime]:
    """When the calendar period `key` starts and ends (UTC; the end is the next one's start).
    ValueError for a key of the right shape naming no period (2026-W53, 2026-02-30)."""
    if kind == "month":
        year, month = int(key[:4]), int(key[5:7])
        start = datetime(year, month, 1, tzinfo=UTC)
        return start, datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    if kind == "week":
        start = datetime.fromisocalendar(int(key[:4]), int(key[6:8]), 1).replace(tzinfo=UTC)
        return start, start + timedelta(days=7)
    start = datetime.strptime(key, "%Y-%m-%d").replace(tzinfo=UTC)
    return start, start + timedelta(days=1)


@dataclass(frozen=True)
class Limits:
    """Effective limits for one user: the plan's, with the user's overrides applied."""

    plan: str
    tokens: int | None
    cost_usd: Decimal | None
    requests: int | None
    rate_tier: str


@dataclass(frozen=True)
class Override:
    tokens: int | None = None
    cost_usd: Decimal | None = None
    requests: int | None = None
    rate_tier: str | None = None


class PlanBook:
    def __init__(self, spec: PlanFile) -> None:
        self.spec = spec
        self.period = spec.period

    def period_key(self, when: datetime) -> str:
        return period_key(when, self.period)

    def period_bounds(self, key: str) -> tuple[datetime, datetime]:
        return period_bounds(key, self.period)

    def limits(self, plan: str | None, override: Override | None = None) -> Limits:
        # An account on a plan the operator since removed falls back to the default plan.
        name = plan if plan in self.spec.plans else self.spec.default_plan
        base = self.spec.plans[name]
        o = override or Override()
        return Limits(
            plan=name,
            tokens=o.tokens if o.tokens is not None else base.tokens,
            cost_usd=o.cost_usd if o.cost_usd is not None else base.cost_usd,
            requests=o.requests if o.requests is not None else base.requests,
            rate_tier=o.rate_tier or base.rate_tier,
        )

    def disconnect_billing(self, plan: str | None) -> DisconnectBilling | None:
        """The plan's disconnect policy, if it sets one (an event without a plan: none)."""
        if plan is None:
            return None
        return self.spec.plans.get(plan, self.spec.plans[self.spec.default_plan]).disconnect_billing

    def max_api_keys(self, plan: str | None) -> int | None:
        """The cap on a user's live keys on `plan` (a removed plan: the default plan's)."""
        name = plan if plan in self.spec.plans else self.spec.default_plan
        return self.spec.plans[name].max_api_keys

    def rows(self) -> list[tuple[str, int | None, Decimal | None, int | None, str]]:
        return [(n, p.tokens, p.cost_usd, p.requests, p.rate_tier) for n, p in self.spec.plans.items()]


def load_plans(path: Path | str | None = None) -> PlanBook:
    """Load PLANS_FILE (or the bundled plans); a bad file raises ConfigError naming the field."""
    return PlanBook(load_yaml(PlanFile, path, "PLANS_FILE", DEFAULT_PLANS_FILE))
