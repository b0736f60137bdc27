"""Billing domain: account and limit facts, and the budget admission commands (core NATS
request-reply)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from lobe.shared.events.chat import TokenUsage
from lobe.shared.events.envelope import Event
from lobe.shared.events.units import MediaUnits

BILLING_LIMIT_EXCEEDED = "billing.limit.exceeded"
BILLING_PRICE_MISSING = "billing.price.missing"
BILLING_ACCOUNT_CHANGED = "billing.account.changed"
BILLING_USAGE_RESET = "billing.usage.reset"
# Commands answered by the billing service's queue group; never captured by a stream (a stream
# on these subjects would answer the request with its own PubAck).
BUDGET_RESERVE = "billing.budget.reserve"
BUDGET_RELEASE = "billing.budget.release"
PRICE_QUOTE = "billing.price.quote"
BUDGET_LEASE = "billing.budget.lease"  # payloads: lobe.shared.events.leases
BILLING_QUEUE = "billing"

LimitKind = Literal["tokens", "cost", "requests"]


class LimitExceeded(Event):
    """`billing.limit.exceeded`: a user hit one of their plan's limits for the period."""

    user_id: str
    limit: LimitKind
    period: str = Field(description="Period key, e.g. 2026-11.")
    used: float = Field(ge=0)
    allowed: float = Field(ge=0)


class PriceMissing(Event):
    """`billing.price.missing`: usage for a model with no price; priced by the default."""

    provider: str
    model: str


class AccountChanged(Event):
    """`billing.account.changed`: a user's plan or limits changed (or the user was created).
    `request_id` is the user id: an admin change belongs to no chat request."""

    user_id: str
    plan: str = Field(description="The plan the user is on now.")


class UsageReset(Event):
    """`billing.usage.reset`: an admin closed a user's current period and opened a new one; the
    user's limits count from `started_at`. `request_id` is the user id, as for AccountChanged."""

    user_id: str
    closed_period: str = Field(description="The period that ended, e.g. 2026-11.")
    period: str = Field(description="The period that started, e.g. 2026-11.1.")
    started_at: datetime


class BudgetReserve(Event):
    """`billing.budget.reserve`: hold the worst-case cost of a request before dispatch."""

    user_id: str
    model: str
    prompt_tokens_estimate: int = Field(ge=0)
    max_output_tokens: int = Field(ge=1)
    units: MediaUnits | None = Field(
        default=None, description="A media request's most units (images, characters, seconds), held too."
    )
    expires_at: datetime | None = Field(
        default=None, description="The gateway stops waiting then; billing holds nothing after it."
    )


class BudgetDecision(Event):
    """Reply to BudgetReserve."""

    admitted: bool
    reserved_usd: float = Field(default=0, ge=0)
    max_output_tokens: int | None = Field(default=None, description="Clamped to what is affordable.")
    limit: LimitKind | None = None
    message: str | None = None


class BudgetRelease(Event):
    """`billing.budget.release`: the request never reached a provider; free its hold."""

    user_id: str


class PriceQuote(Event):
    """`billing.price.quote`: what this usage costs at today's prices (for the final chunk)."""

    provider: str
    model: str
    usage: TokenUsage
    cache_hit: bool = Field(
        default=False, description="Served from the gateway's response cache (priced per the price table)."
    )


class PriceQuoted(Event):
    """Reply to PriceQuote: the same cost billing will record for this usage."""

    cost_usd: float = Field(ge=0)
    priced: bool = Field(description="False when no price was known and the default was used.")
