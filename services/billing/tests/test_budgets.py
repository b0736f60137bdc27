"""Budget admission under concurrency: holds never let spend pass the limit."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import nats
from nats.aio.client import Client as NATS

from lobe.billing.plans import Override
from lobe.billing.service import BillingService
from lobe.shared.events.billing import (
    BILLING_LIMIT_EXCEEDED,
    BUDGET_RELEASE,
    BUDGET_RESERVE,
    BudgetDecision,
    BudgetRelease,
    BudgetReserve,
    LimitExceeded,
)
from lobe.shared.events.streams import EVENTS

from .support import fetchval


async def _reserve(nc: NATS, request_id: str, user_id: str, prompt: int, max_output: int) -> BudgetDecision:
    """Ask billing for a hold on the mock model, as the gateway does."""
    req = BudgetReserve(
        request_id=request_id,
        user_id=user_id,
        model="mock",
        prompt_tokens_estimate=prompt,
        max_output_tokens=max_output,
    )
    reply = await nc.request(BUDGET_RESERVE, req.encode(), timeout=10)
    return BudgetDecision.decode(reply.data)


async def test_concurrent_reservations_never_exceed_the_cost_limit(
    billing: BillingService, nats_url: str
) -> None:
    assert billing.admin is not None
    await billing.admin.create_user("hank", "basic")
    # mock worst case: 1000 prompt * 1.00 + 1000 output * 2.00 per million = 0.003 USD; room for 20.
    await billing.admin.set_limits("hank", Override(cost_usd=Decimal("0.06")))
    nc = await nats.connect(nats_url)
    try:

        async def ask(i: int) -> BudgetDecision:
            return await _reserve(nc, f"r{i}", "hank", prompt=1000, max_output=1000)

        decisions = await asyncio.gather(*(ask(i) for i in range(200)))
        admitted = [d for d in decisions if d.admitted]
        assert len(admitted) == 20
        denied = next(d for d in decisions if not d.admitted)
        assert denied.limit == "cost"
        dsn = billing.settings.database_url.get_secret_value()
        assert await fetchval(
            dsn, "SELECT reserved_usd FROM usage_periods WHERE user_id = 'hank'"
        ) == Decimal("0.06")

        await nc.request(
            BUDGET_RELEASE,
            BudgetRelease(request_id=admitted[0].request_id, user_id="hank").encode(),
            timeout=5,
        )
        again = await ask(999)
        assert again.admitted is True
    finally:
        await nc.close()


async def test_token_limit_refuses_a_hold_that_could_pass_it_and_names_the_limit(
    billing: BillingService, nats_url: str
) -> None:
    assert billing.admin is not None
    await billing.admin.create_user("tina", "enterprise")
    # Each hold reserves 100 prompt + 400 output = 500 tokens; 1,200 allowed: two fit, not three.
    await billing.admin.set_limits("tina", Override(tokens=1200))
    nc = await nats.connect(nats_url)
    try:
        decisions = [await _reserve(nc, f"t{i}", "tina", prompt=100, max_output=400) for i in range(3)]
        assert [d.admitted for d in decisions] == [True, True, False]
        assert decisions[2].limit == "tokens"
        assert decisions[2].message is not None
        assert "tokens limit" in decisions[2].message
        dsn = billing.settings.database_url.get_secret_value()
        assert await fetchval(dsn, "SELECT reserved_tokens FROM usage_periods WHERE user_id = 'tina'") == 1000
        # The refusal is a fact in the EVENTS stream, deduplicated by its event id like every fact.
        stored = await nc.jetstream().pull_subscribe(BILLING_LIMIT_EXCEEDED, stream=EVENTS.name)
        [msg] = await stored.fetch(1, timeout=5)
    finally:
        await nc.close()
    fact = LimitExceeded.decode(msg.data)
    assert (fact.request_id, fact.user_id, fact.limit, fact.used, fact.allowed) == (
        "t2",
        "tina",
        "tokens",
        1000,
        1200,
    )
    assert msg.headers is not None
    assert msg.headers["Nats-Msg-Id"] == str(fact.event_id)


async def test_a_retried_reserve_is_admitted_on_its_first_hold_without_a_second(
    billing: BillingService, nats_url: str
) -> None:
    assert billing.admin is not None
    await billing.admin.create_user("rita", "basic")
    # Room for one hold of 0.003 USD: the retry must find the first, not ask for a second.
    await billing.admin.set_limits("rita", Override(cost_usd=Decimal("0.004")))
    nc = await nats.connect(nats_url)
    try:
        first = await _reserve(nc, "again", "rita", prompt=1000, max_output=1000)
        retried = await _reserve(nc, "again", "rita", prompt=1000, max_output=1000)
        other = await _reserve(nc, "other", "rita", prompt=1000, max_output=1000)
    finally:
        await nc.close()
    assert (first.admitted, retried.admitted, other.admitted) == (True, True, False)
    assert retried.reserved_usd == first.reserved_usd == 0.003
    dsn = billing.settings.database_url.get_secret_value()
    held = "SELECT reserved_requests FROM usage_periods WHERE user_id = 'rita'"
    assert await fetchval(dsn, held) == 1


async def test_a_user_billing_has_not_met_is_admitted_and_held(
    billing: BillingService, nats_url: str
) -> None:
    nc = await nats.connect(nats_url)
    try:
        decision = await _reserve(nc, "stranger-1", "stranger", prompt=10, max_output=10)
    finally:
        await nc.close()
    assert decision.admitted is True
    dsn = billing.settings.database_url.get_secret_value()
    assert await fetchval(dsn, "SELECT count(*) FROM users WHERE id = 'stranger'") == 0
    assert await fetchval(dsn, "SELECT reserved_requests FROM usage_periods WHERE user_id = 'stranger'") == 1
