"""Billing's answers on the bus, with the business logic stubbed: what is answered, with what, and
what is left unanswered. Each test runs twice, on the in-memory bus and on a real nats-server
asked as the gateway asks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from lobe.billing.errors import DeadlinePassedError
from lobe.billing.keys import KeyOwner
from lobe.shared.events.auth import AUTH_KEY_VERIFY, KeyVerified, KeyVerify, UserResolve, UserResolved
from lobe.shared.events.billing import (
    BUDGET_RELEASE,
    BUDGET_RESERVE,
    PRICE_QUOTE,
    BudgetDecision,
    BudgetRelease,
    BudgetReserve,
    PriceQuote,
    PriceQuoted,
)
from lobe.shared.events.chat import TokenUsage

from .support import Ask, responding

ANSWER_WAIT_S = 10.0
UNANSWERED_WAIT_S = 0.3  # how long the real-server variant waits for an answer that must not come
LOGGED_WAIT_S = 10.0  # a loaded machine may log a refusal after the asker stopped waiting


async def logged(caplog: pytest.LogCaptureFixture, text: str, count: int = 1) -> list[str]:
    """The captured messages containing `text`, once there are `count` of them (or the wait ends)."""
    deadline = asyncio.get_running_loop().time() + LOGGED_WAIT_S
    while True:
        found = [r.getMessage() for r in caplog.records if text in r.getMessage()]
        if len(found) >= count or asyncio.get_running_loop().time() >= deadline:
            return found
        await asyncio.sleep(0.02)


KNOWN = bytes.fromhex("ab" * 32)


@dataclass
class Stubs:
    """Budgets and the key table as the responders see them."""

    released: list[str] = field(default_factory=list)
    database_down: bool = False

    async def owner(self, key_hash: bytes) -> KeyOwner | None:
        if self.database_down:
            raise ConnectionRefusedError("connection refused")
        return KeyOwner("kim", "key_1", "premium") if key_hash == KNOWN else None

    async def resolve(self, req: UserResolve) -> UserResolved:
        raise AssertionError("not asked here (test_users.py)")

    async def release(self, req: BudgetRelease) -> None:
        self.released.append(req.request_id)

    async def reserve(self, req: BudgetReserve) -> BudgetDecision:
        if req.user_id == "late":
            raise DeadlinePassedError(req.request_id)
        return BudgetDecision(request_id=req.request_id, admitted=req.user_id != "broke", reserved_usd=0.5)

    def quote(self, req: PriceQuote) -> PriceQuoted:
        return PriceQuoted(request_id=req.request_id, cost_usd=req.usage.total_tokens / 1000, priced=True)


@dataclass
class Responders:
    ask: Ask
    stubs: Stubs


@pytest.fixture(params=["memory", pytest.param("nats", marks=pytest.mark.integration)])
async def responders(request: pytest.FixtureRequest) -> AsyncIterator[Responders]:
    stubs = Stubs()
    async with responding(request, stubs.owner, stubs, stubs.resolve) as asking:
        yield Responders(asking, stubs)


def verify(key_hash: bytes) -> bytes:
    return KeyVerify(request_id="v1", key_sha256=key_hash.hex()).encode()


# -- key verification, release ---------------------------------------------------------------------
async def test_a_live_key_is_answered_with_its_owner_and_plan(responders: Responders) -> None:
    reply = await responders.ask(AUTH_KEY_VERIFY, verify(KNOWN))
    assert reply is not None
    answer = KeyVerified.decode(reply)
    assert (answer.valid, answer.user_id, answer.api_key_id, answer.plan) == (True, "kim", "key_1", "premium")
    assert answer.request_id == "v1"


async def test_an_unknown_key_is_answered_invalid(responders: Responders) -> None:
    reply = await responders.ask(AUTH_KEY_VERIFY, verify(bytes(32)))
    assert reply is not None
    assert KeyVerified.decode(reply).valid is False


async def test_a_malformed_command_is_logged_not_answered_and_the_next_one_is(
    responders: Responders, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="lobe.billing"):
        malformed_json = b'{"request_id": "v2", "key_sha256": "xyz"}'
        assert await responders.ask(AUTH_KEY_VERIFY, malformed_json, wait_s=UNANSWERED_WAIT_S) is None
        assert await responders.ask(AUTH_KEY_VERIFY, b"not json", wait_s=UNANSWERED_WAIT_S) is None
        malformed = await logged(caplog, "malformed auth.key.verify", count=2)
    assert len(malformed) == 2
    assert "key_sha256" in malformed[0]
    assert await responders.ask(AUTH_KEY_VERIFY, verify(KNOWN)) is not None


async def test_a_key_lookup_the_database_cannot_answer_is_left_to_the_gateway_fail_mode(
    responders: Responders, caplog: pytest.LogCaptureFixture
) -> None:
    responders.stubs.database_down = True
    with caplog.at_level(logging.ERROR, logger="lobe.billing"):
        assert await responders.ask(AUTH_KEY_VERIFY, verify(KNOWN), wait_s=UNANSWERED_WAIT_S) is None
        assert await logged(caplog, "database is unavailable")
    responders.stubs.database_down = False
    assert await responders.ask(AUTH_KEY_VERIFY, verify(KNOWN)) is not None


async def test_a_release_frees_the_hold_of_its_request(responders: Responders) -> None:
    await responders.ask(BUDGET_RELEASE, BudgetRelease(request_id="r9", user_id="kim").encode())
    assert responders.stubs.released == ["r9"]


# -- reserve and quote -----------------------------------------------------------------------------
def reserve(user: str) -> bytes:
    return BudgetReserve(
        request_id=f"r-{user}", user_id=user, model="mock", prompt_tokens_estimate=10, max_output_tokens=20
    ).encode()


async def test_a_reserve_is_answered_with_the_budget_decision(responders: Responders) -> None:
    admitted, refused = (
        await responders.ask(BUDGET_RESERVE, reserve("kim")),
        await responders.ask(BUDGET_RESERVE, reserve("broke")),
    )
    assert admitted is not None
    assert refused is not None
    assert BudgetDecision.decode(admitted).admitted is True
    assert (BudgetDecision.decode(refused).admitted, BudgetDecision.decode(refused).request_id) == (
        False,
        "r-broke",
    )


async def test_a_reserve_past_its_deadline_or_malformed_is_logged_and_not_answered(
    responders: Responders, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="lobe.billing"):
        assert await responders.ask(BUDGET_RESERVE, reserve("late"), wait_s=UNANSWERED_WAIT_S) is None
        malformed = b'{"request_id": "r", "user_id": 7}'
        assert await responders.ask(BUDGET_RESERVE, malformed, wait_s=UNANSWERED_WAIT_S) is None
        assert await logged(caplog, "'r-late' arrived after its deadline")
        assert await logged(caplog, "malformed billing.budget.reserve")
    assert await responders.ask(BUDGET_RESERVE, reserve("kim")) is not None


async def test_a_quote_is_answered_with_the_price(responders: Responders) -> None:
    usage = TokenUsage(prompt_tokens=1500, completion_tokens=500)
    quote = PriceQuote(request_id="q1", provider="openai", model="gpt-4o", usage=usage)
    reply = await responders.ask(PRICE_QUOTE, quote.encode())
    assert reply is not None
    assert PriceQuoted.decode(reply).cost_usd == 2.0
