"""Budget reserve and price quote latency and throughput: billing's part of every chat request.

    .venv/bin/python services/billing/bench/reserve_bench.py [--sequential 2000] [--concurrent 20000]
        [--concurrency 64] [--users 64] [--durable]

Starts its own nats-server and embedded PostgreSQL (fsync off unless --durable), migrates a
database, creates `--users` accounts on the unlimited plan and runs `python -m lobe.billing` in its
own process, as in production. A client in this process then sends `billing.budget.reserve`
and `billing.price.quote` requests as the gateway does: first one at a time (latency), then with
`--concurrency` in flight (throughput). Each reserve has its own request id and the users take
turns, so every reserve takes a real hold. Not collected by pytest and not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import nats
import psutil
from nats.aio.client import Client as NATS

from lobe.billing.admin import admin_session
from lobe.billing.migrations import apply_migrations
from lobe.devtools.servers import NatsServer, PostgresServer
from lobe.devtools.suite import start_billing
from lobe.shared.events.billing import (
    BUDGET_RESERVE,
    PRICE_QUOTE,
    BudgetDecision,
    BudgetReserve,
    PriceQuote,
    PriceQuoted,
)
from lobe.shared.events.chat import TokenUsage

WARMUP = 200


async def create_users(dsn: str, nats_url: str, users: int) -> None:
    async with admin_session(dsn, nats_url) as admin:
        for i in range(users):
            await admin.create_user(f"bench-{i}", "enterprise")


@contextlib.asynccontextmanager
async def billing_stack(durable: bool, users: int) -> AsyncIterator[tuple[str, psutil.Process]]:
    """nats-server, PostgreSQL and a billing process; yields the NATS URL and the billing process."""
    with contextlib.ExitStack() as servers, tempfile.TemporaryDirectory(prefix="lobe-bench-") as tmp:
        nats_server = servers.enter_context(NatsServer())
        postgres = servers.enter_context(PostgresServer(Path(tmp) / "pg", durable=durable))
        dsn = postgres.dsn("postgres")
        await apply_migrations(dsn)
        await create_users(dsn, nats_server.url, users)
        billing = await start_billing(nats_server.url, dsn, mode="process", log_level="WARNING")
        try:
            yield nats_server.url, psutil.Process(billing.pid)
        finally:
            await billing.stop()


async def round_trip(nc: NATS, subject: str, body: bytes) -> tuple[float, bytes]:
    started = time.perf_counter()
    reply = await nc.request(subject, body, timeout=10)
    return time.perf_counter() - started, reply.data


async def reserve(nc: NATS, user: str) -> float:
    """One reserve as the gateway sends it (a new request id: a real hold each time)."""
    req = BudgetReserve(
        request_id=uuid.uuid4().hex,
        user_id=user,
        model="gpt-4o-mini",
        prompt_tokens_estimate=500,
        max_output_tokens=1000,
    )
    elapsed, reply = await round_trip(nc, BUDGET_RESERVE, req.encode())
    assert BudgetDecision.decode(reply).admitted
    return elapsed


async def quote(nc: NATS) -> float:
    """One price quote, as the gateway asks for the final chunk's cost."""
    usage = TokenUsage(prompt_tokens=500, completion_tokens=1000)
    req = PriceQuote(request_id=uuid.uuid4().hex, provider="openai", model="gpt-4o-mini", usage=usage)
    elapsed, reply = await round_trip(nc, PRICE_QUOTE, req.encode())
    assert PriceQuoted.decode(reply).priced
    return elapsed


def cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


async def measure(
    label: str, call: Callable[[int], Awaitable[float]], count: int, concurrency: int, billing: psutil.Process
) -> str:
    """`count` calls `concurrency` at a time: throughput, latency, and billing's CPU per call."""
    todo = iter(range(count))
    latencies: list[float] = []

    async def client() -> None:
        for i in todo:
            latencies.append(await call(i))

    started, cpu = time.perf_counter(), cpu_s(billing)
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall_s, billing_cpu_s = time.perf_counter() - started, cpu_s(billing) - cpu
    q = statistics.quantiles(latencies, n=100)
    return (
        f"{label} at concurrency {concurrency}: {count} in {wall_s:.2f} s = {count / wall_s:,.0f}/s; "
        f"latency mean {statistics.fmean(latencies) * 1e6:.0f} us, p50 {q[49] * 1e6:.0f} us, "
        f"p99 {q[98] * 1e6:.0f} us; billing CPU {billing_cpu_s / count * 1e6:.0f} us each"
    )


async def run(sequential: int, concurrent: int, concurrency: int, users: int, durable: bool) -> None:
    async with billing_stack(durable, users) as (nats_url, billing):
        nc = await nats.connect(nats_url)
        try:
            names = [f"bench-{i}" for i in range(users)]

            async def reserve_one(i: int) -> float:
                return await reserve(nc, names[i % users])

            async def quote_one(i: int) -> float:
                return await quote(nc)

            await measure("warm-up", reserve_one, WARMUP, 1, billing)
            await measure("warm-up", quote_one, WARMUP, 1, billing)
            print(await measure("reserve", reserve_one, sequential, 1, billing))
            print(await measure("reserve", reserve_one, concurrent, concurrency, billing))
            print(await measure("quote", quote_one, sequential, 1, billing))
            print(await measure("quote", quote_one, concurrent, concurrency, billing))
        finally:
            await nc.close()
    print(f"(users={users}, postgres fsync {'on' if durable else 'off'}, billing in its own process)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=2000)
    parser.add_argument("--concurrent", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--durable", action="store_true", help="PostgreSQL with fsync on")
    args = parser.parse_args()
    asyncio.run(run(args.sequential, args.concurrent, args.concurrency, args.users, args.durable))


if __name__ == "__main__":
    main()
