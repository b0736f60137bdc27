"""The usage workload of the fault tests and its independent bookkeeping.

Realistic events (skewed users, many models, one unknown, cached prompts, errors, two billing
periods), duplicates that do and do not stop at the stream, publishing, and the exact expected
ledger computed from the price table's YAML rather than through lobe.billing.prices.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import nats
import yaml

from lobe.billing.prices import DEFAULT_PRICES_FILE
from lobe.shared.bus import ensure_streams
from lobe.shared.events.chat import TokenUsage
from lobe.shared.events.streams import BILLING_CONSUMER, USAGE
from lobe.shared.events.usage import USAGE_RECORDED, UsageRecorded

MILLION = Decimal(1_000_000)


# -- workload ------------------------------------------------------------------------------------------
# (provider, model) pairs the chat workers would report, most of them priced, one unknown.
PRICED_MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4.1"),
    ("openai", "gpt-3.5-turbo"),
    ("anthropic", "claude-sonnet-4"),
    ("anthropic", "claude-3-5-haiku"),
    ("gemini", "gemini-2.5-flash"),
    ("ollama", "llama3.1"),
    ("mock", "mock"),
]
UNKNOWN_MODEL = ("acme", "acme-9")


def make_events(count: int, seed: int, prefix: str = "req") -> list[UsageRecorded]:
    """`count` distinct usage events: skewed users, many models, cached prompts, errors, 40 days."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    users = [f"user-{i:02d}" for i in range(40)]
    models = [*PRICED_MODELS, UNKNOWN_MODEL]
    weights = [*([10] * len(PRICED_MODELS)), 1]
    events = []
    for i in range(count):
        provider, model = rng.choices(models, weights)[0]
        prompt = rng.randint(1, 8000)
        status = rng.choices(["ok", "error", "cancelled"], [90, 5, 5])[0]
        events.append(
            UsageRecorded(
                request_id=f"{prefix}-{seed}-{i:06d}",
                user_id=users[min(int(rng.expovariate(0.15)), len(users) - 1)],
                provider=provider,
                deployment=f"{provider}-main",
                model=model,
                usage=TokenUsage(
                    prompt_tokens=prompt,
                    completion_tokens=0 if status == "error" else rng.randint(0, 2000),
                    cached_tokens=rng.randint(0, prompt) if rng.random() < 0.3 else 0,
                ),
                status=status,
                error_code="upstream_error" if status == "error" else None,
                duration_ms=rng.uniform(50, 9000),
                stream=rng.random() < 0.7,
                occurred_at=now - timedelta(seconds=rng.uniform(0, 40 * 86400)),
            )
        )
    return events


def with_duplicates(
    events: Sequence[UsageRecorded], share: float, seed: int
) -> tuple[list[tuple[UsageRecorded, str]], int]:
    """Publishes (event, Nats-Msg-Id), shuffled, with `share` of the events published twice.

    A fifth of the repeats reuse the request id as Nats-Msg-Id (the stream drops those, as it
    does a worker's retried publish); the rest carry another msg id (a second publisher, or a
    replay after the duplicate window) and reach billing, whose unique key must drop them.
    Returns the publishes and how many of them the stream will store.
    """
    rng = random.Random(seed)
    repeats = rng.sample(list(events), round(len(events) * share))
    same_id = len(repeats) // 5
    publishes = [(e, e.request_id) for e in events]
    publishes += [(e, e.request_id) for e in repeats[:same_id]]
    publishes += [(e, f"{e.request_id}:replay") for e in repeats[same_id:]]
    rng.shuffle(publishes)
    return publishes, len(publishes) - same_id


async def publish(nats_url: str, publishes: Sequence[tuple[UsageRecorded, str]], window: int = 500) -> None:
    """Publish to USAGE (created if missing) with the given msg ids, `window` acks in flight at a time."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_streams(js, replicas=1)
        for start in range(0, len(publishes), window):
            await asyncio.gather(
                *(
                    js.publish(USAGE_RECORDED, e.encode(), stream=USAGE.name, headers={"Nats-Msg-Id": msg_id})
                    for e, msg_id in publishes[start : start + window]
                )
            )
    finally:
        await nc.close()


async def redeliveries(nats_url: str) -> int:
    """Deliveries by billing's consumer beyond one per message: work a dead process left unacked."""
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().consumer_info(USAGE.name, BILLING_CONSUMER)
        return int(info.delivered.consumer_seq or 0) - int(info.delivered.stream_seq or 0)
    finally:
        await nc.close()


async def stored_usage_messages(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info(USAGE.name, subjects_filter=USAGE_RECORDED)
        return int(info.state.messages)
    finally:
        await nc.close()


# -- expected cost, from the price table's YAML, not from lobe.billing.prices ------------------------
class ExpectedPrices:
    """Per-million prices read straight from the YAML the service ships, with its lookup rules."""

    def __init__(self) -> None:
        raw = yaml.safe_load(DEFAULT_PRICES_FILE.read_text())
        self.default = self._rate(raw["default"])
        self.entries: dict[tuple[str, str], list[tuple[Any, tuple[Decimal, Decimal, Decimal]]]] = {}
        for m in raw["models"]:
            dated = sorted((p["effective_from"], self._rate(p)) for p in m["prices"])
            self.entries[(m["provider"], m["model"])] = dated

    @staticmethod
    def _rate(p: dict[str, Any]) -> tuple[Decimal, Decimal, Decimal]:
        inp, out = Decimal(str(p["input"])), Decimal(str(p["output"]))
        return inp, out, Decimal(str(p["cached_input"])) if "cached_input" in p else inp

    def cost(self, e: UsageRecorded) -> Decimal:
        dated = self.entries.get((e.provider, e.model))
        rate = self.default
        if dated:
            # The latest entry on or before the day it happened; before the first, the first.
            rate = dated[0][1]
            for effective_from, r in dated:
                if effective_from <= e.occurred_at.date():
                    rate = r
        inp, out, cached_in = rate
        u = e.usage
        cached = min(u.cached_tokens, u.prompt_tokens)
        return ((u.prompt_tokens - cached) * inp + cached * cached_in + u.completion_tokens * out) / MILLION


# -- ledger checks ----------------------------------------------------------------------------------
async def assert_ledger_is_exactly(dsn: str, events: Sequence[UsageRecorded]) -> Decimal:
    """Each unique request once at its expected cost; rollups and period totals agree. Returns total."""
    prices = ExpectedPrices()
    expected = {e.request_id: prices.cost(e) for e in events}
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await conn.fetch("SELECT request_id, cost_usd FROM usage_ledger")
        ledger = {r["request_id"]: r["cost_usd"] for r in rows}
        assert len(rows) == len(ledger), "a request id is in the ledger twice"
        assert ledger.keys() == expected.keys()
        wrong = {k: (ledger[k], v) for k, v in expected.items() if ledger[k] != v}
        assert not wrong, f"{len(wrong)} rows priced wrong, e.g. {next(iter(wrong.items()))}"
        total = sum(expected.values(), Decimal(0))
        assert await conn.fetchval("SELECT sum(cost_usd) FROM usage_ledger") == total
        by_key = """SELECT user_id, period, provider, model, count(*) AS requests, sum(prompt_tokens) AS p,
                           sum(completion_tokens) AS c, sum(cached_tokens) AS k, sum(cost_usd) AS cost
                    FROM usage_ledger GROUP BY 1, 2, 3, 4"""
        rollups = """SELECT user_id, period, provider, model, requests, prompt_tokens AS p,
                            completion_tokens AS c, cached_tokens AS k, cost_usd AS cost FROM usage_rollups"""
        assert {tuple(r) for r in await conn.fetch(by_key)} == {tuple(r) for r in await conn.fetch(rollups)}
        per_period = """SELECT user_id, period, count(*), sum(prompt_tokens + completion_tokens), sum(cost_usd)
                        FROM usage_ledger GROUP BY 1, 2"""
        periods = "SELECT user_id, period, requests, tokens, cost_usd FROM usage_periods"
        assert {tuple(r) for r in await conn.fetch(per_period)} == {
            tuple(r) for r in await conn.fetch(periods)
        }
        return total
    finally:
        await conn.close()
