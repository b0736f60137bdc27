"""Budget leases (docs/billing.md, "Budget leases"): billing grants a part of what a user has left,
never more than is left, none near a limit; usage written under a lease settles against it; a
return frees the unused part at once and the rest as usage is written; a lease nobody returns
expires; a reset moves it with the holds."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from nats.aio.client import Client as NATS

from lobe.billing.plans import Override
from lobe.billing.service import BillingService
from lobe.shared.events.billing import BUDGET_LEASE
from lobe.shared.events.leases import LeaseAsk, LeaseCharge, LeaseGrant, LeaseGrants, LeaseReturn, LeaseWant
from lobe.shared.events.usage import USAGE_REPORTED

from .support import fetchval, make_settings, publish_usage, usage_event, wait_for

# The mock model: 1.00 input and 2.00 output per million tokens. A request of 1000 + 1000 tokens has
# a worst case of 0.003 USD.
WORST = Decimal("0.003")
WANT = {"model": "mock", "prompt_tokens_estimate": 1000, "max_output_tokens": 1000}


async def _ask(nc: NATS, wants: list[LeaseWant], returns: list[LeaseReturn] | None = None) -> LeaseGrants:
    ask = LeaseAsk(request_id="ask", gateway_id="gw-1", wants=wants, returns=returns or [])
    reply = await nc.request(BUDGET_LEASE, ask.encode(), timeout=10)
    return LeaseGrants.decode(reply.data)


async def _lease(nc: NATS, user: str) -> LeaseGrant | None:
    [grant] = (await _ask(nc, [LeaseWant(user_id=user, **WANT)])).grants
    return grant


async def _period(billing: BillingService, user: str) -> dict[str, Decimal | int]:
    dsn = billing.settings.database_url.get_secret_value()
    row = await fetchval(
        dsn,
        "SELECT row(cost_usd, reserved_usd, reserved_requests, reserved_tokens) FROM usage_periods "
        "WHERE user_id = $1",
        user,
    )
    return {"cost": row[0], "held": row[1], "held_requests": row[2], "held_tokens": row[3]}


def _charged(request_id: str, user: str, lease: LeaseGrant, completion: int = 1000) -> bytes:
    """The usage event of a request the gateway admitted under `lease` (its worst case charged)."""
    event = usage_event(request_id, user_id=user, prompt=1000, completion=completion)
    charge = LeaseCharge(lease_id=lease.lease_id, usd=WORST, tokens=2000)
    return event.model_copy(update={"lease": charge}).encode()


async def test_a_lease_is_a_quarter_of_what_is_left_and_held_like_a_hold(
    billing: BillingService, nats_url: str, nc: NATS
) -> None:
    await _user(billing, "lea", Override(cost_usd=WORST * 200))
    lease = await _lease(nc, "lea")
    assert lease is not None
    assert (lease.requests, lease.usd, lease.tokens) == (50, WORST * 50, 2000 * 50)  # 200 // 4
    assert lease.hold_rate.input == Decimal("1.00")
    assert lease.hold_rate.output == Decimal("2.00")
    assert await _period(billing, "lea") == {
        "cost": 0,
        "held": WORST * 50,
        "held_requests": 50,
        "held_tokens": 100_000,
    }
    # A second lease shares what is left with the first: (200 - 50) // (4 * 2) = 18.
    second = await _lease(nc, "lea")
    assert second is not None
    assert second.requests == 18


async def test_near_a_limit_there_is_no_lease_and_the_edge_is_pinned(
    billing: BillingService, nats_url: str, nc: NATS
) -> None:
    """The minimum lease is 8 requests, a quarter of what is left: 32 requests left grant one of 8,
    31 grant none."""
    for user, affordable in (("at", 32), ("under", 31)):
        await _user(billing, user, Override(cost_usd=WORST * affordable))
    at = await _lease(nc, "at")
    assert at is not None
    assert at.requests == 8
    assert await _lease(nc, "under") is None
    assert (
        await fetchval(
            billing.settings.database_url.get_secret_value(),
            "SELECT count(*) FROM reservations WHERE user_id = 'under'",
        )
        == 0
    )


async def test_concurrent_leases_never_take_more_than_is_left(
    billing: BillingService, nats_url: str, nc: NATS
) -> None:
    await _user(billing, "many", Override(cost_usd=WORST * 1000, requests=900))
    grants = await asyncio.gather(*(_lease(nc, "many") for _ in range(40)))
    leased = [g for g in grants if g is not None]
    assert leased, "far from the limit, leases are granted"
    assert sum(g.requests for g in leased) <= 900
    assert sum(g.usd for g in leased) <= WORST * 1000
    period = await _period(billing, "many")
    assert period["held_requests"] == sum(g.requests for g in leased) <= 900
    assert period["held"] == sum(g.usd for g in leased) <= WORST * 1000


async def test_usage_settles_against_the_lease_and_a_return_frees_the_rest_once_all_is_written(
    billing: BillingService, nats_url: str, nc: NATS
) -> None:
    lease, dsn = await _leased_user(billing, nc, "sam")
    assert lease.requests == 100  # a quarter of 400
    # The gateway admitted three requests under it; two answered (one of them shorter than its
    # worst case), the third still runs when the lease is returned.
    await publish_usage(nats_url, [_charged("s1", "sam", lease), _charged("s2", "sam", lease, completion=10)])
    real = WORST + Decimal("0.00102")  # 1000 * 1.00 + 10 * 2.00 per million
    await wait_for(lambda: _costs(dsn, "sam", real))
    assert await _period(billing, "sam") == {
        "cost": real,
        "held": WORST * 98,
        "held_requests": 98,
        "held_tokens": 2000 * 98,
    }
    unused = LeaseReturn(
        lease_id=lease.lease_id, user_id="sam", usd=WORST * 97, tokens=2000 * 97, requests=97
    )
    assert (await _ask(nc, [], [unused])).grants == []
    assert await _period(billing, "sam") == {
        "cost": real,
        "held": WORST,
        "held_requests": 1,
        "held_tokens": 2000,
    }
    await publish_usage(nats_url, [_charged("s3", "sam", lease)])
    await wait_for(lambda: _costs(dsn, "sam", real + WORST))
    assert await _period(billing, "sam") == {
        "cost": real + WORST,
        "held": 0,
        "held_requests": 0,
        "held_tokens": 0,
    }
    assert await fetchval(dsn, "SELECT count(*) FROM reservations") == 0  # the lease is gone
    # A redelivered usage event changes nothing, with or without its lease.
    await publish_usage(nats_url, [_charged("s3", "sam", lease)])
    await asyncio.sleep(0.5)
    assert (await _period(billing, "sam"))["cost"] == real + WORST


async def test_a_cache_hit_report_counts_under_the_users_lease_only(
    billing: BillingService, nats_url: str, nc: NATS
) -> None:
    for user in ("cat", "dog"):
        await _user(billing, user, Override(cost_usd=WORST * 400))
    dsn = billing.settings.database_url.get_secret_value()
    lease = await _lease(nc, "cat")
    assert lease is not None
    charge = LeaseCharge(lease_id=lease.lease_id, usd=WORST, tokens=2000)
    hit = usage_event("hit", user_id="cat").model_copy(update={"status": "cache_hit", "lease": charge})
    forged = usage_event("forged", user_id="dog").model_copy(update={"status": "cache_hit", "lease": charge})
    await publish_usage(nats_url, [hit, forged], subject=USAGE_REPORTED)
    await wait_for(lambda: _rows(dsn, 1))
    await asyncio.sleep(0.5)
    assert await fetchval(dsn, "SELECT request_id FROM usage_ledger") == "hit"
    assert (await _period(billing, "cat"))["held_requests"] == lease.requests - 1


async def test_a_lease_nobody_returns_expires_and_the_budget_is_whole_again(
    nats_url: str, billing_db: str, nc: NATS
) -> None:
    settings = make_settings(nats_url, billing_db, billing_lease_term_s=0.5, billing_reservation_ttl_s=0.5)
    async with BillingService(settings) as billing:
        await _user(billing, "gone", Override(cost_usd=WORST * 400))
        lease = await _lease(nc, "gone")
        assert lease is not None
        # One request answered before its gateway died; its usage still settles.
        await publish_usage(nats_url, [_charged("g1", "gone", lease)])
        await wait_for(lambda: _costs(billing_db, "gone", WORST))
        await wait_for(lambda: _released(billing_db, "gone"), within=30)
        assert await _period(billing, "gone") == {
            "cost": WORST,
            "held": 0,
            "held_requests": 0,
            "held_tokens": 0,
        }


async def test_a_reset_moves_a_lease_into_the_new_period_where_its_usage_settles(
    billing: BillingService, nats_url: str, nc: NATS
) -> None:
    lease, dsn = await _leased_user(billing, nc, "rita")
    assert billing.admin is not None
    reset = await billing.admin.reset_usage("rita")
    assert reset.moved_holds == lease.requests
    await publish_usage(nats_url, [_charged("r1", "rita", lease)])
    await wait_for(lambda: _rows(dsn, 1))
    rows = await fetchval(
        dsn,
        "SELECT array_agg(row(period, reserved_requests, cost_usd) ORDER BY period) FROM usage_periods "
        "WHERE user_id = 'rita'",
    )
    assert [tuple(r) for r in rows] == [
        (reset.closed, 0, 0),
        (reset.opened, lease.requests - 1, WORST),
    ]


async def _user(billing: BillingService, user: str, limits: Override) -> None:
    assert billing.admin is not None
    await billing.admin.create_user(user, "basic")
    await billing.admin.set_limits(user, limits)


async def _leased_user(billing: BillingService, nc: NATS, user: str) -> tuple[LeaseGrant, str]:
    """A user with room for 400 worst cases and a lease; the database's address."""
    await _user(billing, user, Override(cost_usd=WORST * 400))
    lease = await _lease(nc, user)
    assert lease is not None
    return lease, billing.settings.database_url.get_secret_value()


async def _costs(dsn: str, user: str, cost: Decimal) -> bool:
    return bool(await fetchval(dsn, "SELECT cost_usd FROM usage_periods WHERE user_id = $1", user) == cost)


async def _rows(dsn: str, n: int) -> bool:
    return bool(await fetchval(dsn, "SELECT count(*) FROM usage_ledger") == n)


async def _released(dsn: str, user: str) -> bool:
    return bool(await fetchval(dsn, "SELECT count(*) FROM reservations WHERE user_id = $1", user) == 0)
