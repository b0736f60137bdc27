"""Billing's answers on the bus, with the business logic stubbed: what is answered, with what, and
what is left unanswered. FastStream's subscribers run each test twice, in memory (TestNatsBroker)
and on a real nats-server asked as the gateway asks; the nats.py admission responder only on the
real server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import nats
import pytest
from faststream.nats import NatsBroker, TestNatsBroker

from lobe.billing.admission import AdmissionResponder
from lobe.billing.errors import DeadlinePassedError
from lobe.billing.keys import KeyOwner
from lobe.billing.responders import build_router
from lobe.shared.bus import ask, flush
from lobe.shared.events.auth import AUTH_KEY_VERIFY, KeyVerified, KeyVerify
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

Ask = Callable[
    ..., Awaitable[bytes | None]
]  # (subject, body, wait_s=...) -> the reply's body; None: no answer
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


def _broker(stubs: Stubs, url: str | None = None) -> NatsBroker:
    broker = NatsBroker(url) if url else NatsBroker()
    broker.include_router(build_router(stubs.owner, stubs))
    return broker


@pytest.fixture(params=["memory", pytest.param("nats", marks=pytest.mark.integration)])
async def faststream(request: pytest.FixtureRequest) -> AsyncIterator[Responders]:
    stubs = Stubs()
    if request.param == "memory":
        async with TestNatsBroker(_broker(stubs)) as broker:

            async def in_memory(subject: str, body: bytes, wait_s: float = ANSWER_WAIT_S) -> bytes | None:
                reply = await broker.request(body, subject, timeout=wait_s)
                return reply.body or None  # a handler that raised left the body empty

            yield Responders(in_memory, stubs)
        return
    url = request.getfixturevalue("nats_url")
    async with _broker(stubs, url) as broker, gateway(url) as on_the_wire:
        await broker.start()
        await flush(broker.connection)  # subscribed at the server before the first ask, as billing does
        yield Responders(on_the_wire, stubs)


@pytest.fixture
async def admission(nats_url: str) -> AsyncIterator[Responders]:
    stubs = Stubs()
    async with gateway(nats_url) as on_the_wire:
        nc = await nats.connect(nats_url)
        responder = AdmissionResponder(nc, stubs)
        await responder.start()
        yield Responders(on_the_wire, stubs)
        await responder.stop()
        await nc.close()


@asynccontextmanager
async def gateway(url: str) -> AsyncIterator[Ask]:
    """A NATS client asking as the gateway does (lobe.shared.bus.ask: silence is an answer)."""
    nc = await nats.connect(url)

    async def on_the_wire(subject: str, body: bytes, wait_s: float = ANSWER_WAIT_S) -> bytes | None:
        return await ask(nc, subject, body, wait_s) or None

    try:
        yield on_the_wire
    finally:
        await nc.close()


def verify(key_hash: bytes) -> bytes:
    return KeyVerify(request_id="v1", key_sha256=key_hash.hex()).encode()


# -- FastStream: key verification, release ---------------------------------------------------------
async def test_a_live_key_is_answered_with_its_owner_and_plan(faststream: Responders) -> None:
    reply = await faststream.ask(AUTH_KEY_VERIFY, verify(KNOWN))
    assert reply is not None
    answer = KeyVerified.decode(reply)
    assert (answer.valid, answer.user_id, answer.api_key_id, answer.plan) == (True, "kim", "key_1", "premium")
    assert answer.request_id == "v1"


async def test_an_unknown_key_is_answered_invalid(faststream: Responders) -> None:
    reply = await faststream.ask(AUTH_KEY_VERIFY, verify(bytes(32)))
    assert reply is not None
    assert KeyVerified.decode(reply).valid is False


async def test_a_malformed_command_is_logged_not_answered_and_the_next_one_is(
    faststream: Responders, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="lobe.billing"):
        malformed_json = b'{"request_id": "v2", "key_sha256": "xyz"}'
        assert await faststream.ask(AUTH_KEY_VERIFY, malformed_json, wait_s=UNANSWERED_WAIT_S) is None
        assert await faststream.ask(AUTH_KEY_VERIFY, b"not json", wait_s=UNANSWERED_WAIT_S) is None
        malformed = await logged(caplog, "malformed auth.key.verify", count=2)
    assert len(malformed) == 2
    assert "key_sha256" in malformed[0]
    assert await faststream.ask(AUTH_KEY_VERIFY, verify(KNOWN)) is not None


async def test_a_key_lookup_the_database_cannot_answer_is_left_to_the_gateway_fail_mode(
    faststream: Responders, caplog: pytest.LogCaptureFixture
) -> None:
    faststream.stubs.database_down = True
    with caplog.at_level(logging.ERROR, logger="lobe.billing"):
        assert await faststream.ask(AUTH_KEY_VERIFY, verify(KNOWN), wait_s=UNANSWERED_WAIT_S) is None
        assert await logged(caplog, "database is unavailable")
    faststream.stubs.database_down = False
    assert await faststream.ask(AUTH_KEY_VERIFY, verify(KNOWN)) is not None


async def test_a_release_frees_the_hold_of_its_request(faststream: Responders) -> None:
    await faststream.ask(BUDGET_RELEASE, BudgetRelease(request_id="r9", user_id="kim").encode())
    assert faststream.stubs.released == ["r9"]


# -- nats.py: reserve and quote --------------------------------------------------------------------
def reserve(user: str) -> bytes:
    return BudgetReserve(
        request_id=f"r-{user}", user_id=user, model="mock", prompt_tokens_estimate=10, max_output_tokens=20
    ).encode()


async def test_a_reserve_is_answered_with_the_budget_decision(admission: Responders) -> None:
    admitted, refused = (
        await admission.ask(BUDGET_RESERVE, reserve("kim")),
        await admission.ask(BUDGET_RESERVE, reserve("broke")),
    )
    assert admitted is not None
    assert refused is not None
    assert BudgetDecision.decode(admitted).admitted is True
    assert (BudgetDecision.decode(refused).admitted, BudgetDecision.decode(refused).request_id) == (
        False,
        "r-broke",
    )


async def test_a_reserve_past_its_deadline_or_malformed_is_logged_and_not_answered(
    admission: Responders, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="lobe.billing"):
        assert await admission.ask(BUDGET_RESERVE, reserve("late"), wait_s=UNANSWERED_WAIT_S) is None
        malformed = b'{"request_id": "r", "user_id": 7}'
        assert await admission.ask(BUDGET_RESERVE, malformed, wait_s=UNANSWERED_WAIT_S) is None
        assert await logged(caplog, "'r-late' arrived after its deadline")
        assert await logged(caplog, "malformed billing.budget.reserve")
    assert await admission.ask(BUDGET_RESERVE, reserve("kim")) is not None


async def test_a_quote_is_answered_with_the_price(admission: Responders) -> None:
    usage = TokenUsage(prompt_tokens=1500, completion_tokens=500)
    quote = PriceQuote(request_id="q1", provider="openai", model="gpt-4o", usage=usage)
    reply = await admission.ask(PRICE_QUOTE, quote.encode())
    assert reply is not None
    assert PriceQuoted.decode(reply).cost_usd == 2.0
