"""Billing is robust to any value its event models allow: a reserve, a quote or a usage event at
the models' extremes is answered or ingested, refused or dead-lettered, never an exception (which
would leave a reserve unanswered, a 503 at the gateway, or stop an ingest loop)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lobe.billing.alerts import Alerts
from lobe.billing.budgets import Budgets
from lobe.billing.ingest import Ingester
from lobe.billing.plans import load_plans
from lobe.billing.prices import cost_of, load_prices
from lobe.billing.service import BillingService
from lobe.shared.events.billing import BudgetReserve, PriceQuote
from lobe.shared.events.chat import TokenUsage
from lobe.shared.events.usage import USAGE_DEAD_LETTER, USAGE_RECORDED, UsageDeadLetter, UsageRecorded

from .support import fetchval

HUGE = 10**30
tokens = st.integers(0, 2**80)
texts = st.text(st.characters(codec="utf-8"), min_size=1, max_size=128)


def test_cost_of_is_exact_for_any_token_count() -> None:
    rate = load_prices().default
    cost = cost_of(rate, TokenUsage(prompt_tokens=HUGE, completion_tokens=HUGE))
    assert cost == (HUGE * rate.input + HUGE * rate.output) / Decimal(1_000_000)


async def test_a_reserve_beyond_any_budget_is_refused_not_left_unanswered(billing: BillingService) -> None:
    budgets = Budgets(billing.pool, load_prices(), load_plans(), 60, Alerts(None))  # type: ignore[arg-type]
    for max_output in (HUGE, 2**63 - 1):
        req = BudgetReserve(
            request_id=f"r-{max_output}",
            user_id="u",
            model="mock",
            prompt_tokens_estimate=HUGE,
            max_output_tokens=max_output,
        )
        decision = await budgets.reserve(req)
        assert not decision.admitted
        assert decision.message is not None
        assert "beyond any budget" in decision.message
    quote = budgets.quote(
        PriceQuote(
            request_id="q",
            provider="mock",
            model="mock",
            usage=TokenUsage(prompt_tokens=HUGE, completion_tokens=0),
        )
    )
    assert quote.cost_usd > 0


class FakeMsg:
    """A fetched JetStream message, as the ingester sees it: its data, subject, ack."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.subject = USAGE_RECORDED
        self.headers: dict[str, str] | None = None
        self.acks = 0

    async def ack(self) -> None:
        self.acks += 1

    async def nak(self, delay: float | None = None) -> None:
        raise AssertionError("a valid event must never be sent back for redelivery")


class Published:
    """JetStream publishes of the ingester (its dead letters)."""

    def __init__(self) -> None:
        self.dead: list[UsageDeadLetter] = []

    async def publish(self, subject: str, payload: bytes, **_: Any) -> object:
        if subject == USAGE_DEAD_LETTER:
            self.dead.append(UsageDeadLetter.model_validate_json(payload))
        return object()


events = st.builds(
    UsageRecorded,
    request_id=texts,
    user_id=texts,
    api_key_id=st.none() | texts,
    provider=st.text(min_size=1, max_size=64),
    deployment=st.text(min_size=1, max_size=128),
    model=st.text(min_size=1, max_size=256),
    usage=st.builds(
        TokenUsage,
        prompt_tokens=tokens,
        completion_tokens=tokens,
        cached_tokens=tokens,
        reasoning_tokens=tokens,
    ),
    status=st.sampled_from(["ok", "error", "cancelled", "cache_hit"]),
    error_code=st.none() | st.text(max_size=40),
    ttft_ms=st.none() | st.floats(min_value=0, allow_nan=False, allow_infinity=False),
    duration_ms=st.floats(min_value=0, allow_nan=False, allow_infinity=False),
    stream=st.booleans(),
    occurred_at=st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)
    ),
)


@pytest.fixture
async def pool(billing_db: str) -> Any:
    async with asyncpg.create_pool(billing_db, min_size=1, max_size=2) as p:
        yield p


# No shrinking: each example writes to PostgreSQL, and a failing batch is readable as it is.
@settings(
    max_examples=40,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(batch=st.lists(events, min_size=1, max_size=6))
async def test_any_valid_usage_event_is_ingested_or_dead_lettered_and_always_acked(
    pool: asyncpg.Pool, billing_db: str, batch: list[UsageRecorded]
) -> None:
    published = Published()
    batch = [e.model_copy(update={"request_id": f"{uuid.uuid4().hex}:{e.request_id}"[:128]}) for e in batch]
    ingester = Ingester(published, pool, load_prices(), load_plans(), Alerts(published))  # type: ignore[arg-type]
    msgs = [FakeMsg(e.encode()) for e in batch]
    pause = await ingester.handle(msgs)  # type: ignore[arg-type]
    assert pause == 0.0
    assert all(m.acks == 1 for m in msgs)
    dead = {UsageRecorded.model_validate_json(d.payload).request_id for d in published.dead}
    for event in batch:
        stored = (
            await fetchval(
                billing_db, "SELECT count(*) FROM usage_ledger WHERE request_id = $1", event.request_id
            )
            if "\x00" not in event.request_id
            else 0
        )
        assert (stored == 1) != (event.request_id in dead), event
