"""Billing SIGKILLed twice mid-ingestion and restarted: every unique usage event once, exact cost."""

from __future__ import annotations

import time
from functools import partial

import asyncpg

from lobe.devtools.suite.fixtures import MakeProcess

from .conftest import billing_service, consumer_backlog, ledger_count, wait_until
from .workload import (
    assert_ledger_is_exactly,
    make_events,
    publish,
    redeliveries,
    stored_usage_messages,
    with_duplicates,
)

EVENTS = 10_000
# Kill once a quarter and again once 60 % of the ledger is in: both land mid-stream.
KILL_AT = (2_500, 6_000)
# Small batches make ingestion span the kills; a short ack wait gets the batch a killed process
# had in hand redelivered within seconds instead of the production default's minute.
BILLING_ENV = {"BILLING_BATCH_SIZE": "200", "BILLING_ACK_WAIT_S": "2"}


async def test_ledger_is_exact_after_billing_is_sigkilled_twice_during_ingestion(
    nats_url: str, billing_db: str, make_process: MakeProcess
) -> None:
    events = make_events(EVENTS, seed=11)
    publishes, stored = with_duplicates(events, share=0.05, seed=12)
    started = time.monotonic()
    billing = billing_service(make_process, nats_url, billing_db, **BILLING_ENV)
    await publish(nats_url, publishes)
    print(f"\npublished {len(publishes)} events in {time.monotonic() - started:.2f} s")
    # Repeats with the same Nats-Msg-Id stopped at the stream; the others must be billing's to drop.
    assert await stored_usage_messages(nats_url) == stored > EVENTS

    conn = await asyncpg.connect(billing_db, timeout=5)
    try:
        ingest_started = time.monotonic()
        await billing.start()
        for threshold in KILL_AT:
            await wait_until(partial(_at_least, conn, threshold), 30, f"{threshold} rows", poll=0.005)
            await billing.kill()
            at_kill = await ledger_count(conn)
            print(f"SIGKILL with {at_kill} rows in the ledger")
            assert at_kill < EVENTS, "ingestion finished before the kill: the test proved nothing"
            await billing.start()

        async def complete() -> bool:
            return await ledger_count(conn) == EVENTS and await consumer_backlog(nats_url) == 0

        await wait_until(complete, within=60, what="all events ingested and acked")
        elapsed = time.monotonic() - ingest_started
        redelivered = await redeliveries(nats_url)
        print(
            f"ingested {stored} messages ({EVENTS} unique) in {elapsed:.2f} s with two restarts "
            f"({stored / elapsed:.0f} msg/s overall); {redelivered} deliveries repeated after the kills"
        )
        # The kills caught fetched-but-unacked batches, which came back and were ingested once.
        assert redelivered > 0
    finally:
        await conn.close()
    total = await assert_ledger_is_exactly(billing_db, events)
    print(f"ledger total {total} USD, exact")
    assert billing.running


async def _at_least(conn: asyncpg.Connection, rows: int) -> bool:
    return await ledger_count(conn) >= rows
