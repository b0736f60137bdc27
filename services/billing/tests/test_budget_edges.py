"""Each budget limit pinned at its edge: a limit of N worst cases admits exactly N holds and
refuses the N + 1st, naming the limit; a limit one unit short of N admits N - 1. With N = 1 the
period's first hold is decided (the upsert's INSERT branch); with N = 3 the later ones are (its
DO UPDATE branch)."""

from __future__ import annotations

from decimal import Decimal

import nats
import pytest

from lobe.billing.plans import Override
from lobe.billing.service import BillingService
from lobe.shared.events.billing import BUDGET_RESERVE, BudgetDecision, BudgetReserve

# Every hold: 1,000 prompt + 1,000 output tokens of the mock (1.00 and 2.00 USD per million).
HOLD_TOKENS = 2_000
HOLD_USD = Decimal("0.003")
ONE_UNIT = {"requests": 1, "tokens": 1, "cost_usd": Decimal("1e-10")}  # the ledger's cost quantum
PER_HOLD = {"requests": 1, "tokens": HOLD_TOKENS, "cost_usd": HOLD_USD}
LIMIT_NAME = {"requests": "requests", "tokens": "tokens", "cost_usd": "cost"}


async def admitted_in_a_row(billing: BillingService, nats_url: str, user: str, attempts: int) -> list[bool]:
    nc = await nats.connect(nats_url)
    try:
        decisions = []
        for i in range(attempts):  # one after another: the edge, not the race, is under test
            reserve = BudgetReserve(
                request_id=f"{user}-{i}",
                user_id=user,
                model="mock",
                prompt_tokens_estimate=1000,
                max_output_tokens=1000,
            )
            reply = await nc.request(BUDGET_RESERVE, reserve.encode(), timeout=10)
            decisions.append(BudgetDecision.decode(reply.data))
    finally:
        await nc.close()
    refused = [d for d in decisions if not d.admitted]
    assert all(d.limit == LIMIT_NAME[kind_of(user)] for d in refused), [d.limit for d in refused]
    return [d.admitted for d in decisions]


def kind_of(user: str) -> str:
    return user.split("-")[0].replace("cost", "cost_usd")


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("kind", ["requests", "tokens", "cost_usd"])
async def test_a_limit_of_n_holds_admits_exactly_n_and_refuses_the_next(
    billing: BillingService, nats_url: str, kind: str, n: int
) -> None:
    assert billing.admin is not None
    user = f"{kind.replace('_usd', '')}-{n}"
    await billing.admin.create_user(user, "basic")
    await billing.admin.set_limits(user, Override(**{kind: PER_HOLD[kind] * n}))
    assert await admitted_in_a_row(billing, nats_url, user, n + 1) == [True] * n + [False]


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("kind", ["requests", "tokens", "cost_usd"])
async def test_a_limit_one_unit_short_of_n_holds_admits_n_minus_1(
    billing: BillingService, nats_url: str, kind: str, n: int
) -> None:
    assert billing.admin is not None
    user = f"{kind.replace('_usd', '')}-short-{n}"
    await billing.admin.create_user(user, "basic")
    await billing.admin.set_limits(user, Override(**{kind: PER_HOLD[kind] * n - ONE_UNIT[kind]}))
    assert await admitted_in_a_row(billing, nats_url, user, n) == [True] * (n - 1) + [False]
