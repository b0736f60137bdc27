"""Budget admission against billing's subjects on a real NATS server, billing played by the test:
refusals are 429s, and when billing does not answer the fail mode decides (never a 500)."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from lobe.gateway.budget import BudgetClient
from lobe.gateway.settings import GatewaySettings
from lobe.shared.bus import Bus, flush
from lobe.shared.catalog import GATEWAY
from lobe.shared.events.billing import (
    BUDGET_RELEASE,
    BUDGET_RESERVE,
    BudgetDecision,
    BudgetRelease,
    BudgetReserve,
)
from lobe.shared.openai_errors import ApiError

from .support import BODY, CALLER, collected


def client(nc: NATS, **overrides: object) -> BudgetClient:
    return BudgetClient(
        Bus.over(nc, GATEWAY), GatewaySettings(nats_url="unused", billing_timeout_s=0.2, **overrides)
    )


async def releases(nc: NATS) -> list[BudgetRelease]:
    return await collected(nc, BUDGET_RELEASE, BudgetRelease)


async def answer_reserves(nc: NATS, admitted: bool, message: str | None = None) -> list[BudgetReserve]:
    asked: list[BudgetReserve] = []

    async def on_reserve(msg: Msg) -> None:
        reserve = BudgetReserve.decode(msg.data)
        asked.append(reserve)
        decision = BudgetDecision(
            request_id=reserve.request_id, admitted=admitted, limit="cost", message=message
        )
        await msg.respond(decision.encode())

    await nc.subscribe(BUDGET_RESERVE, cb=on_reserve)
    await flush(nc)
    return asked


async def test_an_admitted_request_holds_its_worst_case(nc: NATS, worker_nc: NATS) -> None:
    asked = await answer_reserves(worker_nc, admitted=True)
    assert await client(nc, default_max_output_tokens=321).reserve("r1", CALLER, BODY) is True
    [reserve] = asked
    assert (reserve.user_id, reserve.model, reserve.max_output_tokens) == ("alice", "mock", 321)
    assert reserve.prompt_tokens_estimate > 0


async def test_a_refused_request_is_429_insufficient_quota_with_billings_reason(
    nc: NATS, worker_nc: NATS
) -> None:
    await answer_reserves(worker_nc, admitted=False, message="You exceeded your cost limit")
    with pytest.raises(ApiError) as caught:
        await client(nc).reserve("r1", CALLER, BODY)
    assert (caught.value.status, caught.value.code) == (429, "insufficient_quota")
    assert "cost limit" in caught.value.message


async def test_billing_away_fails_closed_with_503_and_frees_a_late_hold(nc: NATS, worker_nc: NATS) -> None:
    freed = await releases(worker_nc)
    with pytest.raises(ApiError) as caught:
        await client(nc, budget_fail_mode="closed").reserve("r1", CALLER, BODY)
    assert (caught.value.status, caught.value.code) == (503, "billing_unavailable")
    assert caught.value.headers == {"Retry-After": "1"}
    await nc.flush()
    await asyncio.sleep(0.05)
    assert [r.request_id for r in freed] == ["r1"]


async def test_billing_away_fails_open_when_configured_and_holds_nothing(nc: NATS, worker_nc: NATS) -> None:
    await releases(worker_nc)
    assert await client(nc, budget_fail_mode="open").reserve("r1", CALLER, BODY) is False


async def test_billing_switched_off_asks_nothing(nc: NATS, worker_nc: NATS) -> None:
    asked = await answer_reserves(worker_nc, admitted=True)
    assert await client(nc, billing_enabled=False).reserve("r1", CALLER, BODY) is False
    await nc.flush()
    assert asked == []
