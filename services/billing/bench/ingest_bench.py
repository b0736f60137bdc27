"""Billing ingestion throughput: usage events per second from a JetStream backlog into the ledger.

    .venv/bin/python services/billing/bench/ingest_bench.py [--events 50000] [--duplicates 0.05]

Starts its own nats-server and a durable (fsync on) embedded PostgreSQL unless NATS_URL /
DATABASE_URL are set (then a fresh database is created on that server). It publishes the events
first, then starts the billing service and times from "ready" until every unique event is
committed and acked (the service's own counter; the ledger is counted once, at the end), so the
number is ingestion alone (decode, price, transaction, ack).
It runs on the services' event loop (uvloop), as the billing process does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import time
import uuid
from collections.abc import Iterator

import asyncpg
import nats
from pydantic import SecretStr

from lobe.billing import metrics
from lobe.billing.service import BillingService
from lobe.billing.settings import BillingSettings
from lobe.shared.bus import ensure_streams
from lobe.shared.events.chat import TokenUsage
from lobe.shared.events.usage import USAGE_RECORDED, UsageRecorded
from lobe.shared.process import run_on_service_loop

MODELS = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4"), ("mock", "mock")]


@contextlib.contextmanager
def servers() -> Iterator[tuple[str, str]]:
    with contextlib.ExitStack() as stack:
        nats_url = os.environ.get("NATS_URL")
        if not nats_url:
            from lobe.devtools.servers import NatsServer

            nats_url = stack.enter_context(NatsServer()).url
        admin_dsn = os.environ.get("DATABASE_URL")
        if not admin_dsn:
            from lobe.devtools.servers import PostgresServer

            admin_dsn = stack.enter_context(PostgresServer(durable=True)).url
        yield nats_url, admin_dsn


async def fresh_database(admin_dsn: str) -> str:
    name = f"billing_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin_dsn.rsplit("/", 1)[0] + "/" + name


async def publish(nats_url: str, events: int, duplicates: float) -> int:
    rng = random.Random(1)
    unique = []
    for i in range(events):
        provider, model = MODELS[i % len(MODELS)]
        unique.append(
            UsageRecorded(
                request_id=f"bench-{i}",
                user_id=f"user-{i % 500}",
                provider=provider,
                deployment=provider,
                model=model,
                usage=TokenUsage(prompt_tokens=rng.randint(10, 4000), completion_tokens=rng.randint(1, 1000)),
                status="ok",
                duration_ms=rng.uniform(100, 5000),
            ).encode()
        )
    stream = unique + rng.sample(unique, int(events * duplicates))
    rng.shuffle(stream)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_streams(js, replicas=1)
    for start in range(0, len(stream), 1000):
        await asyncio.gather(*(js.publish(USAGE_RECORDED, body) for body in stream[start : start + 1000]))
    await nc.close()
    return len(stream)


def ingested() -> float:
    return sum(s.value for m in metrics.INGESTED.collect() for s in m.samples if s.name.endswith("_total"))


async def run(events: int, duplicates: float, consumers: int, batch: int) -> None:
    with servers() as (nats_url, admin_dsn):
        dsn = await fresh_database(admin_dsn)
        published = await publish(nats_url, events, duplicates)
        settings = BillingSettings(
            nats_url=nats_url,
            database_url=SecretStr(dsn),
            ops_port=0,
            billing_consumers=consumers,
            billing_batch_size=batch,
        )
        async with BillingService(settings) as svc:
            assert svc.pool is not None
            started = time.perf_counter()
            # The service's own counter (raised after commit and ack) rather than a count(*) of
            # the ledger every 50 ms, a query on the very database being measured (the difference
            # was within the noise: docs/performance.md); the ledger is counted once, at the end.
            while ingested() < events:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - started
            stored = await svc.pool.fetchval("SELECT count(*) FROM usage_ledger")
            assert stored == events, f"{stored} rows in the ledger for {events} unique events"
        print(
            f"ingested {events} unique usage events ({published} messages, {duplicates:.0%} duplicates) "
            f"in {elapsed:.2f} s: {events / elapsed:,.0f} events/s, {published / elapsed:,.0f} messages/s "
            f"(consumers={consumers}, batch={batch})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--duplicates", type=float, default=0.05)
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    # The service's own loop (uvloop), not asyncio's default: the bench measures what production runs.
    run_on_service_loop(run(args.events, args.duplicates, args.consumers, args.batch))


if __name__ == "__main__":
    main()
