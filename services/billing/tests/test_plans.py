"""Plans, overrides and period rollover."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from lobe.billing.plans import Override, load_plans, period_key
from lobe.billing.service import BillingService

from .support import fetchval, publish_usage, usage_event, wait_for


def test_period_keys_roll_over_at_calendar_boundaries_in_utc() -> None:
    last = datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)
    first = datetime(2026, 12, 1, tzinfo=UTC)
    assert (period_key(last), period_key(first)) == ("2026-11", "2026-12")
    assert period_key(datetime(2026, 12, 31, tzinfo=UTC), "week") == "2026-W53"
    assert period_key(first, "day") == "2026-12-01"


def test_override_replaces_only_the_values_it_sets() -> None:
    plans = load_plans()
    limits = plans.limits("basic", Override(cost_usd=Decimal("2.5")))
    assert limits.cost_usd == Decimal("2.5")
    assert limits.tokens == plans.spec.plans["basic"].tokens
    assert limits.rate_tier == "basic"
    assert plans.limits("enterprise").cost_usd is None


async def test_usage_across_a_month_boundary_lands_in_two_periods(
    billing: BillingService, nats_url: str, billing_db: str
) -> None:
    before = usage_event("nov", occurred_at=datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC))
    after = usage_event("dec", occurred_at=datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC))
    await publish_usage(nats_url, [before, after])

    async def both() -> bool:
        return int(await fetchval(billing_db, "SELECT count(*) FROM usage_periods")) == 2

    await wait_for(both)
    nov = await fetchval(billing_db, "SELECT requests FROM usage_periods WHERE period = '2026-11'")
    dec = await fetchval(billing_db, "SELECT requests FROM usage_periods WHERE period = '2026-12'")
    assert (nov, dec) == (1, 1)
