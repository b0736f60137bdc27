"""The gateway's budget leases against billing's subject on a real NATS server, billing played by
the test: a request with no lease takes the exact hold and asks for one in the background; under a
lease requests are admitted with no round trip, charged their exact worst case, up to its size;
renewal is asked ahead of need, batched; what is not used, or given back, is returned; near a limit
(no grant) the exact hold stays, with no ask per request."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from lobe.gateway.budget import BudgetClient
from lobe.gateway.budget_leases import NO_LEASE_BACKOFF_S
from lobe.gateway.settings import GatewaySettings
from lobe.shared.bus import Bus, flush
from lobe.shared.catalog import GATEWAY
from lobe.shared.events.billing import BUDGET_LEASE
from lobe.shared.events.chat import TokenUsage
from lobe.shared.events.leases import LeaseAsk, LeaseCharge, LeaseGrant, LeaseGrants, LeaseRate, UpstreamPrice
from lobe.shared.token_ceiling import prompt_token_ceiling

from .support import BODY, CALLER

OUTPUT = 100  # max_tokens of the requests below
ASKED = BODY.model_copy(update={"max_tokens": OUTPUT})
PROMPT = prompt_token_ceiling(ASKED)
# The hold rate below: 1.00 input, 2.00 output per million tokens.
WORST = (PROMPT * Decimal(1) + OUTPUT * Decimal(2)) / 1_000_000


class Billing:
    """Answers lease asks: a lease of `size` requests (None: no lease), and records every ask."""

    def __init__(self, size: int | None, term_s: float = 30.0) -> None:
        self.size = size
        self.term_s = term_s
        self.asks: list[LeaseAsk] = []
        self.granted = 0

    async def on_ask(self, msg: Msg) -> None:
        ask = LeaseAsk.decode(msg.data)
        self.asks.append(ask)
        now = datetime.now(UTC)
        grants = [self._grant(w.user_id, w.model, now) if self.size else None for w in ask.wants]
        await msg.respond(LeaseGrants(request_id=ask.request_id, grants=grants, occurred_at=now).encode())

    def _grant(self, user: str, model: str, now: datetime) -> LeaseGrant:
        assert self.size is not None
        self.granted += 1
        return LeaseGrant(
            lease_id=f"lease-{self.granted}",
            user_id=user,
            model=model,
            requests=self.size,
            tokens=(PROMPT + OUTPUT) * self.size,
            usd=WORST * self.size,
            admit_until=now + timedelta(seconds=self.term_s),
            hold_rate=LeaseRate(input=Decimal("1.00"), output=Decimal("2.00")),
            prices=[
                UpstreamPrice(provider="mock", model="mock", input=Decimal("0.5"), output=Decimal("1.5"))
            ],
            cache_hit_factor=Decimal("0.1"),
        )

    @property
    def returns(self) -> list[tuple[str, Decimal, int, int]]:
        return [(r.lease_id, r.usd, r.tokens, r.requests) for a in self.asks for r in a.returns]


async def billing(nc: NATS, size: int | None, term_s: float = 30.0) -> Billing:
    played = Billing(size, term_s)
    await nc.subscribe(BUDGET_LEASE, cb=played.on_ask)
    await flush(nc)
    return played


def client(nc: NATS) -> BudgetClient:
    return BudgetClient(
        Bus.over(nc, GATEWAY),
        GatewaySettings(nats_url="unused", billing_timeout_s=2, budget_fail_mode="open"),
    )


async def charged(budget: BudgetClient) -> LeaseCharge | None:
    """Admit one request; its lease charge (None: the exact path, which nobody here answers: the
    client fails open)."""
    return (await budget.admit("r", CALLER, ASKED))[1]


async def leasing(nc: NATS, worker_nc: NATS, size: int, term_s: float = 30.0) -> tuple[Billing, BudgetClient]:
    """Billing played with leases of `size`, and a budget client that holds one."""
    played = await billing(worker_nc, size, term_s)
    budget = client(nc)
    await leased(budget)
    return played, budget


async def leased(budget: BudgetClient) -> None:
    """The first request asks for a lease; wait until the grant is in."""
    assert await charged(budget) is None  # no lease yet: the exact hold
    for _ in range(200):
        await asyncio.sleep(0.01)
        if budget.leases is not None and budget.leases.live:
            return
    raise AssertionError("no lease granted")


async def test_requests_under_a_lease_are_charged_their_exact_worst_case_up_to_its_size(
    nc: NATS, worker_nc: NATS
) -> None:
    played, budget = await leasing(nc, worker_nc, size=8)
    charges = [await charged(budget) for _ in range(8)]
    assert all(
        c is not None and (c.lease_id, c.usd, c.tokens) == ("lease-1", WORST, PROMPT + OUTPUT)
        for c in charges
    )
    assert await charged(budget) is None  # the ninth: past the lease, the exact hold
    # The renewal was asked at half the lease (a want while it still admitted), in one ask with
    # nothing else; the full lease was returned with nothing unused.
    await asyncio.sleep(0.1)
    assert [len(a.wants) for a in played.asks][:2] == [1, 1]
    assert played.returns[0] == ("lease-1", Decimal(0), 0, 0)
    await budget.close()


async def test_a_request_given_back_returns_to_the_lease_or_in_a_return_of_its_own(
    nc: NATS, worker_nc: NATS
) -> None:
    played, budget = await leasing(nc, worker_nc, size=16)
    first, second = await charged(budget), await charged(budget)
    assert first is not None
    assert second is not None
    budget.finished(first, settled=False)  # never reached a worker: back into the lease
    budget.finished(second, settled=True)  # its usage event settles it at billing
    third = await charged(budget)
    assert third is not None
    await budget.close()  # returns the lease: all but the two requests admitted and not given back
    assert played.returns == [("lease-1", WORST * 14, (PROMPT + OUTPUT) * 14, 14)]
    # After the return, the third request never reached a worker: it goes back in a return of its own.
    budget.finished(third, settled=False)
    await asyncio.sleep(0.1)
    assert played.returns[1:] == [("lease-1", WORST, PROMPT + OUTPUT, 1)]
    await budget.close()


async def test_an_idle_lease_is_returned_when_its_term_ends(nc: NATS, worker_nc: NATS) -> None:
    played, budget = await leasing(nc, worker_nc, size=16, term_s=0.3)
    assert await charged(budget) is not None
    await asyncio.sleep(0.6)  # nobody sends anything: the term's end wakes the book
    assert played.returns == [("lease-1", WORST * 15, (PROMPT + OUTPUT) * 15, 15)]
    assert budget.leases is not None
    assert not budget.leases.live
    await budget.close()


async def test_near_a_limit_requests_take_the_exact_hold_without_an_ask_each(
    nc: NATS, worker_nc: NATS
) -> None:
    played = await billing(worker_nc, size=None)
    budget = client(nc)
    for _ in range(20):
        assert await charged(budget) is None
        await asyncio.sleep(0.01)
    assert len(played.asks) == 1, f"one ask, then none for {NO_LEASE_BACKOFF_S} s"
    await budget.close()


async def test_the_final_chunk_is_priced_with_the_leases_prices_without_a_quote(
    nc: NATS, worker_nc: NATS
) -> None:
    _, budget = await leasing(nc, worker_nc, size=8)
    usage = TokenUsage(prompt_tokens=1000, completion_tokens=200)
    # No responder on the quote subject: an answer can only come from the lease's prices.
    assert await budget.quote("r1", "mock", "mock", usage, requested="mock") == 0.0008  # 0.5 + 0.3 per 1e3
    assert await budget.quote("r2", "mock", "mock", usage, cache_hit=True, requested="mock") == 0.00008
    assert await budget.quote("r3", "other", "mock", usage, requested="mock") is None  # not its upstream
    await budget.close()
