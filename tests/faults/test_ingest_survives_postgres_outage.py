"""PostgreSQL down for 30 s mid-ingestion: billing keeps running, loses nothing, catches up alone."""

from __future__ import annotations

import asyncio
import time

import pytest

from lobe.devtools.servers import PostgresServer
from lobe.devtools.suite.fixtures import MakeProcess

from .conftest import billing_service, consumer_backlog, fetchval, wait_until
from .workload import assert_ledger_is_exactly, make_events, publish, with_duplicates

OUTAGE_S = 30.0
EVENTS = 6_000
SLICES = 10  # publishes keep arriving all through the outage, as chat traffic would


@pytest.mark.timeout(240)
async def test_billing_catches_up_by_itself_after_postgres_is_down_for_30_s(
    nats_url: str, private_pg_server: PostgresServer, make_process: MakeProcess
) -> None:
    pg = private_pg_server
    dsn = pg.dsn("postgres")
    events = make_events(EVENTS, seed=21)
    publishes, _ = with_duplicates(events, share=0.05, seed=22)
    third = len(publishes) // 3
    before, during, after = publishes[:third], publishes[third : 2 * third], publishes[2 * third :]

    billing = billing_service(make_process, nats_url, dsn)
    await billing.start()  # applies the migrations to the private server
    pid = billing.pid

    async def settled() -> bool:
        return await consumer_backlog(nats_url) == 0

    await publish(nats_url, before)
    await wait_until(settled, within=30, what="first third ingested")

    await asyncio.to_thread(pg.stop)
    down_at = time.monotonic()

    async def publish_through_outage() -> None:
        size = -(-len(during) // SLICES)
        for start in range(0, len(during), size):
            await publish(nats_url, during[start : start + size])
            await asyncio.sleep(OUTAGE_S / (SLICES + 1))

    publisher = asyncio.create_task(publish_through_outage())

    async def unready() -> bool:
        return not await billing.ready()

    await wait_until(unready, within=10, what="billing reports not ready while PostgreSQL is down")
    await asyncio.wait_for(publisher, OUTAGE_S + 10)
    await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
    waiting = await consumer_backlog(nats_url)
    assert waiting >= len(during) * 0.9, "usage published during the outage should wait in the stream"
    assert billing.running, "billing must ride out the outage, not exit"

    await asyncio.to_thread(pg.start)
    up_at = time.monotonic()
    print(f"\nPostgreSQL down {up_at - down_at:.1f} s; {waiting} messages waiting when it came back")
    await publish(nats_url, after)

    async def complete() -> bool:
        rows = int(await fetchval(dsn, "SELECT count(*) FROM usage_ledger"))
        return rows == EVENTS and await consumer_backlog(nats_url) == 0

    catch_up = await wait_until(complete, within=90, what="ledger complete after PostgreSQL returned")
    print(f"caught up {catch_up:.1f} s after PostgreSQL was back ({EVENTS} unique events in the ledger)")
    assert billing.running
    assert billing.pid == pid, "billing was never restarted"
    assert await billing.ready()
    total = await assert_ledger_is_exactly(dsn, events)
    print(f"ledger total {total} USD, exact")
