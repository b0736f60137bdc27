"""Ingestion against real NATS JetStream and PostgreSQL: exactly once, dead letters, outages."""

from __future__ import annotations

import asyncio
import json
import random
from decimal import Decimal

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy

from lobe.billing.prices import load_prices
from lobe.billing.service import BillingService
from lobe.shared.events.usage import USAGE_DEAD_LETTER, USAGE_REPORTED

from .support import fetchval, make_settings, publish_usage, usage_event, wait_for, wait_for_ledger


async def test_ledger_holds_exactly_the_unique_events_when_5_percent_are_duplicates(
    billing: BillingService, nats_url: str, billing_db: str
) -> None:
    unique = [
        usage_event(f"req-{i}", user_id=f"user-{i % 7}", prompt=100 + i, completion=i) for i in range(1000)
    ]
    duplicates = random.Random(4).sample(unique, 50)
    stream = unique + duplicates
    random.Random(5).shuffle(stream)
    await publish_usage(nats_url, list(stream))
    await wait_for_ledger(billing_db, 1000)
    await asyncio.sleep(0.5)  # let duplicates published last be processed too
    prices = load_prices()
    expected = sum(
        (prices.price("mock", "mock", e.occurred_at, e.usage).cost_usd for e in unique), Decimal(0)
    )
    assert await fetchval(billing_db, "SELECT count(*) FROM usage_ledger") == 1000
    assert await fetchval(billing_db, "SELECT sum(cost_usd) FROM usage_ledger") == expected
    assert await fetchval(billing_db, "SELECT sum(cost_usd) FROM usage_rollups") == expected
    assert await fetchval(billing_db, "SELECT sum(requests) FROM usage_periods") == 1000


async def test_a_cache_hit_is_recorded_as_one_request_at_the_cache_price(
    billing: BillingService, nats_url: str, billing_db: str
) -> None:
    live = usage_event("live", model="gpt-4o", provider="openai")
    hit = usage_event("hit", model="gpt-4o", provider="openai").model_copy(update={"status": "cache_hit"})
    await publish_usage(nats_url, [live, hit])
    await wait_for_ledger(billing_db, 2)
    costs = {
        rid: await fetchval(billing_db, "SELECT cost_usd FROM usage_ledger WHERE request_id = $1", rid)
        for rid in ("live", "hit")
    }
    assert costs["live"] > 0
    assert costs["hit"] == 0  # the bundled table: cache hits are free
    assert (
        await fetchval(billing_db, "SELECT status FROM usage_ledger WHERE request_id = 'hit'") == "cache_hit"
    )
    assert await fetchval(billing_db, "SELECT sum(requests) FROM usage_periods") == 2


async def test_malformed_event_goes_to_dead_letter_with_reason_and_stream_continues(
    billing: BillingService, nats_url: str, billing_db: str
) -> None:
    await publish_usage(
        nats_url, [usage_event("before"), b'{"request_id": "bad", "user_id": 7}', b"not json"]
    )
    await publish_usage(nats_url, [usage_event("after")])
    await wait_for_ledger(billing_db, 2)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(
            USAGE_DEAD_LETTER,
            stream="USAGE",
            config=ConsumerConfig(filter_subject=USAGE_DEAD_LETTER, deliver_policy=DeliverPolicy.ALL),
        )
        dead = [json.loads(m.data) for m in await sub.fetch(2, timeout=5)]
    finally:
        await nc.close()
    assert {d["payload"] for d in dead} == {'{"request_id": "bad", "user_id": 7}', "not json"}
    bad = next(d for d in dead if d["payload"].startswith("{"))
    assert "user_id" in bad["reason"]
    assert "provider" in bad["reason"]
    consumer_pending = await _pending(nats_url)
    assert consumer_pending == 0


async def test_gateway_reported_usage_of_a_lost_worker_is_billed_once_and_nothing_else_is_taken_from_it(
    billing: BillingService, nats_url: str, billing_db: str
) -> None:
    lost = usage_event("lost").model_copy(update={"status": "error", "error_code": "worker_lost"})
    forged = usage_event("forged", prompt=10**6)  # status ok: only a worker reports that
    await publish_usage(nats_url, [lost, forged], subject=USAGE_REPORTED)
    # The worker was not dead after all and records the same request too.
    await publish_usage(nats_url, [usage_event("lost", completion=999), usage_event("after")])
    await wait_for_ledger(billing_db, 2)
    await wait_for(lambda: _pending_is_zero(nats_url))
    # One row per request, and the worker's record stands over the gateway's report.
    rows = await fetchval(
        billing_db, "SELECT string_agg(request_id, ',' ORDER BY request_id) FROM usage_ledger"
    )
    assert rows == "after,lost"
    assert (
        await fetchval(billing_db, "SELECT completion_tokens FROM usage_ledger WHERE request_id = 'lost'")
        == 999
    )
    assert await fetchval(billing_db, "SELECT sum(tokens) FROM usage_periods") == 150 + 100 + 999
    nc = await nats.connect(nats_url)
    try:
        sub = await nc.jetstream().pull_subscribe(
            USAGE_DEAD_LETTER,
            stream="USAGE",
            config=ConsumerConfig(filter_subject=USAGE_DEAD_LETTER, deliver_policy=DeliverPolicy.ALL),
        )
        [dead] = [json.loads(m.data) for m in await sub.fetch(1, timeout=5)]
    finally:
        await nc.close()
    assert (dead["subject"], json.loads(dead["payload"])["request_id"]) == (USAGE_REPORTED, "forged")
    assert "only what a gateway reports" in dead["reason"]


async def _pending_is_zero(nats_url: str) -> bool:
    return await _pending(nats_url) == 0


async def test_ledger_records_the_cost_at_the_model_price(
    billing: BillingService, nats_url: str, billing_db: str
) -> None:
    await publish_usage(nats_url, [usage_event("priced-1", prompt=1_000_000, completion=500_000)])
    await wait_for_ledger(billing_db, 1)
    # mock: 1.00 per million input, 2.00 per million output.
    assert await fetchval(billing_db, "SELECT cost_usd FROM usage_ledger") == Decimal("2.0000000000")
    assert await fetchval(billing_db, "SELECT priced FROM usage_ledger") is True


async def test_an_answer_served_by_another_model_is_priced_by_the_model_that_served_it(
    billing: BillingService, nats_url: str, billing_db: str
) -> None:
    # The client asked for "chat" (a routed public name billing has no price for); a fallback's
    # deployment asked OpenAI for gpt-4: that is what the provider charges, and what billing records.
    served = usage_event("fallback-1", model="chat", provider="openai", prompt=1_000_000, completion=500_000)
    await publish_usage(nats_url, [served.model_copy(update={"served_model": "gpt-4"})])
    await wait_for_ledger(billing_db, 1)
    # gpt-4: 30.00 per million input, 60.00 per million output.
    assert await fetchval(billing_db, "SELECT cost_usd FROM usage_ledger") == Decimal("60.0000000000")
    assert await fetchval(billing_db, "SELECT priced FROM usage_ledger") is True
    assert await fetchval(billing_db, "SELECT model FROM usage_ledger") == "chat"  # as the client asked


async def test_unknown_model_is_priced_by_default_and_alerted(
    billing: BillingService, nats_url: str, billing_db: str
) -> None:
    nc = await nats.connect(nats_url)
    try:
        sub = await nc.subscribe("billing.price.missing")
        await publish_usage(nats_url, [usage_event("mystery", provider="acme", model="acme-9", prompt=1000)])
        msg = await sub.next_msg(timeout=10)
    finally:
        await nc.close()
    alert = json.loads(msg.data)
    assert (alert["provider"], alert["model"]) == ("acme", "acme-9")
    cost = await fetchval(billing_db, "SELECT cost_usd FROM usage_ledger WHERE NOT priced")
    assert cost > 0


async def test_events_published_while_database_is_down_are_ingested_after_it_returns(
    nats_url: str, private_pg_server: object
) -> None:
    from lobe.billing.migrations import apply_migrations

    pg = private_pg_server
    dsn = pg.dsn("postgres")  # type: ignore[attr-defined]
    await apply_migrations(dsn)
    async with BillingService(make_settings(nats_url, dsn)):
        await publish_usage(nats_url, [usage_event(f"early-{i}") for i in range(50)])

        async def early_in() -> bool:
            return int(await fetchval(dsn, "SELECT count(*) FROM usage_ledger")) == 50

        await wait_for(early_in)
        await asyncio.to_thread(pg.stop)  # type: ignore[attr-defined]
        await publish_usage(nats_url, [usage_event(f"late-{i}") for i in range(50)])
        await asyncio.sleep(3)  # several failed, nak'ed attempts while the database is gone
        assert await _pending(nats_url) > 0  # not acked: nothing committed them
        await asyncio.to_thread(pg.start)  # type: ignore[attr-defined]

        async def late_in() -> bool:
            try:
                return int(await fetchval(dsn, "SELECT count(*) FROM usage_ledger")) == 100
            except OSError:
                return False

        await wait_for(late_in, within=60)
    assert await fetchval(dsn, "SELECT sum(requests) FROM usage_periods") == 100


async def _pending(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().consumer_info("USAGE", "billing")
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)
    finally:
        await nc.close()


async def test_a_workers_record_published_back_to_back_with_the_gateways_report_stands_in_either_order(
    billing: BillingService, nats_url: str, billing_db: str
) -> None:
    lost = usage_event("one", completion=1).model_copy(
        update={"status": "error", "error_code": "worker_lost"}
    )
    await publish_usage(nats_url, [lost], subject=USAGE_REPORTED)
    await publish_usage(nats_url, [usage_event("one", completion=700)])
    await publish_usage(nats_url, [usage_event("two", completion=800)])
    await publish_usage(nats_url, [lost.model_copy(update={"request_id": "two"})], subject=USAGE_REPORTED)
    await wait_for(lambda: _pending_is_zero(nats_url))
    await wait_for_ledger(billing_db, 2)
    completions = await fetchval(
        billing_db, "SELECT string_agg(completion_tokens::text, ',' ORDER BY request_id) FROM usage_ledger"
    )
    assert completions == "700,800"
    assert await fetchval(billing_db, "SELECT sum(requests) FROM usage_rollups") == 2
    assert await fetchval(billing_db, "SELECT requests || ',' || tokens FROM usage_periods") == "2,1700"
