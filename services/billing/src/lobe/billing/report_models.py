"""The usage API's answers as models: lobe.billing.reports and lobe.billing.suggestions build
them, lobe.billing.openapi publishes their schemas, so the document cannot drift from the answers.

Money is a decimal string of US dollars: exact, where a JSON number would be read as a float.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Money = Annotated[str, Field(pattern=r"^-?\d+(\.\d+)?$", description="US dollars, as a decimal string.")]


def usd(value: Decimal) -> str:
    """An exact amount as Money: no exponent, no trailing zeros."""
    return format(value.normalize(), "f")


class Totals(BaseModel):
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: Money


class PairTotals(Totals):
    """One provider and model's totals."""

    provider: str
    model: str


class GroupTotals(BaseModel):
    """The totals of one provider (`byProvider`) or one model (`byModel`), as LobeChat's usage
    summary names them."""

    tokens: int = Field(description="Prompt and completion tokens.")
    cost: Money
    requests: int


class PeriodTotals(BaseModel):
    """One of the user's periods: the calendar period, or one a usage reset opened in it."""

    period: str = Field(description="2026-11, or 2026-11.1 for the period the first reset in 2026-11 opened.")
    started_at: datetime
    ended_at: datetime = Field(description="The next period's start, or the calendar period's end.")
    requests: int
    tokens: int
    cost_usd: Money


class DayTotals(BaseModel):
    """One UTC day of the period (the console's chart of cost and tokens per day)."""

    day: str = Field(description="2026-11-30 (UTC).")
    requests: int
    tokens: int = Field(description="Prompt and completion tokens.")
    cost_usd: Money


class UsageReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    object: Literal["usage"] = "usage"
    user_id: str
    period: str
    totals: Totals
    breakdown: list[PairTotals] = Field(description="Per provider and model, dearest first.")
    by_provider: dict[str, GroupTotals] = Field(alias="byProvider")
    by_model: dict[str, GroupTotals] = Field(alias="byModel")
    periods: list[PeriodTotals] = Field(
        description="Every period of the user in this calendar period, oldest first (more than one "
        "after a usage reset); their totals add up to the calendar period's."
    )
    days: list[DayTotals] = Field(
        default_factory=list, description="The period's days with usage, oldest first."
    )


SuggestionKind = Literal[
    "model_switch", "implement_caching", "small_requests", "cheaper_model", "prompt_caching"
]


class Suggestion(BaseModel):
    """A way to spend less. `model_switch` and `implement_caching` carry exactly LobeChat's three
    fields; the other kinds add what they are about (docs/billing.md, "Cost suggestions")."""

    type: SuggestionKind
    description: str
    potential_savings: Money = Field(alias="potentialSavings")
    model: str | None = None
    suggested_model: str | None = None
    requests: int | None = None
    share: float | None = Field(
        default=None, description="small_requests: their share of the model's requests."
    )

    model_config = ConfigDict(populate_by_name=True)


class SuggestionList(BaseModel):
    object: Literal["list"] = "list"
    period: str
    data: list[Suggestion] = Field(description="Largest potential savings first.")


class UsageResetDone(BaseModel):
    object: Literal["usage.reset"] = "usage.reset"
    user_id: str
    closed_period: str
    period: str = Field(description="The period that starts now; limits count from here.")
    started_at: datetime
    moved_holds: int = Field(description="Holds of running requests, now counted in the new period.")
