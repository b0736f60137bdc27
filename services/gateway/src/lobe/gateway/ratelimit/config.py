"""The operator's rate-limit file (RATE_LIMITS_FILE): tiers, plan -> tier, per-user overrides, per-IP.

Validated at start-up; a bad file stops the gateway with the field named (lobe.shared.config_file).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lobe.shared.config_file import load_yaml
from lobe.shared.events.chat import Caller

DEFAULT_RATE_LIMITS_FILE = Path(__file__).parents[1] / "config" / "rate_limits.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tier(_Strict):
    """Per user and window; None is unlimited. `concurrent`: chat requests in flight at once."""

    requests: int | None = Field(ge=1)
    tokens: int | None = Field(ge=1)
    concurrent: int | None = Field(default=None, ge=1)


class UserOverride(_Strict):
    """Replaces single numbers of the user's tier."""

    requests: int | None = Field(default=None, ge=1)
    tokens: int | None = Field(default=None, ge=1)
    concurrent: int | None = Field(default=None, ge=1)


class PerIp(_Strict):
    requests: int = Field(ge=1)
    window_s: int = Field(ge=1)


class RateLimitFile(_Strict):
    window_s: int = Field(default=60, ge=1)
    default_tier: str
    tiers: dict[str, Tier] = Field(min_length=1)
    plans: dict[str, str] = Field(default_factory=dict)
    users: dict[str, UserOverride] = Field(default_factory=dict)
    per_ip: PerIp

    @model_validator(mode="after")
    def _tiers_exist(self) -> RateLimitFile:
        named = {"default_tier": self.default_tier} | {f"plans.{p}": t for p, t in self.plans.items()}
        for where, tier in named.items():
            if tier not in self.tiers:
                raise ValueError(f"{where}: tier {tier!r} is not one of {sorted(self.tiers)}")
        return self


@dataclass(frozen=True)
class UserLimits:
    """What one caller may do per window."""

    tier: str
    requests: int | None
    tokens: int | None
    window_s: int
    concurrent: int | None = None


class RateLimitConfig:
    def __init__(self, spec: RateLimitFile) -> None:
        self.spec = spec
        self.per_ip = spec.per_ip

    def tier_of(self, caller: Caller) -> str:
        """The credential's tier when this file knows it, else the plan's, else the default."""
        if caller.rate_tier in self.spec.tiers:
            return caller.rate_tier
        return self.spec.plans.get(caller.plan, self.spec.default_tier)

    def limits_for(self, caller: Caller) -> UserLimits:
        tier_name = self.tier_of(caller)
        tier = self.spec.tiers[tier_name]
        override = self.spec.users.get(caller.user_id)
        requests, tokens, concurrent = tier.requests, tier.tokens, tier.concurrent
        if override is not None:
            requests = override.requests if override.requests is not None else requests
            tokens = override.tokens if override.tokens is not None else tokens
            concurrent = override.concurrent if override.concurrent is not None else concurrent
        return UserLimits(tier_name, requests, tokens, self.spec.window_s, concurrent)


def load_rate_limits(path: Path | str | None = None) -> RateLimitConfig:
    """Load RATE_LIMITS_FILE (or the bundled seed numbers); a bad file raises ConfigError."""
    return RateLimitConfig(load_yaml(RateLimitFile, path, "RATE_LIMITS_FILE", DEFAULT_RATE_LIMITS_FILE))
