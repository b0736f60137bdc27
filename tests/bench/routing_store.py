"""Benchmark (not a test): what the shared routing state costs a request.

    python tests/bench/routing_store.py [--requests 2000] [--workers 3] [--concurrency 16]

Starts a real nats-server and `--workers` routers (one NATS connection each, as worker processes
have), then times the part of a request that waits on the routing store: `Router.gate()` (breaker
check, then the per-window counters when the deployment has limits) and `Router.ended()`, for

- a deployment without limits (breaker closed): decided on the watched local copy,
- a deployment with an rpm limit: one counter increment,
- a deployment with rpm and tpm limits: two counter increments, sent together, and the token
  count corrected when the attempt ends (off the request's path),

sequentially and with all routers admitting at once. For comparison it times the same admission
done as a compare-and-set loop on a KV key (what a counter would cost without server-side counters)
and reports its conflicts. Prints a Markdown table (docs/routing.md quotes it). Not collected by
pytest (no test_ prefix) and not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable

import nats
from nats.js.errors import KeyWrongLastSequenceError

from lobe.chat_worker.deployments import Deployment
from lobe.chat_worker.policies import Limits
from lobe.chat_worker.routing.metrics import RoutingMetrics
from lobe.chat_worker.routing.router import Gate, Router
from lobe.devtools.servers import NatsServer

FREE = Deployment(name="free", provider="mock")
RPM_ONLY = Deployment(name="rpm-only", provider="mock", limits=Limits(rpm=10_000_000))
LIMITED = Deployment(name="rpm-and-tpm", provider="mock", limits=Limits(rpm=10_000_000, tpm=10_000_000_000))


def summary(label: str, samples: list[float], extra: str = "") -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered) * 1e6
    p99 = ordered[int(len(ordered) * 0.99) - 1] * 1e6
    return f"| {label} | {len(samples)} | {p50:.0f} | {p99:.0f} | {extra} |"


async def timed(step: Callable[[], Awaitable[object]], count: int, concurrency: int) -> list[float]:
    samples: list[float] = []
    slots = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with slots:
            began = time.perf_counter()
            await step()
            samples.append(time.perf_counter() - began)

    await asyncio.gather(*(one() for _ in range(count)))
    return samples


def admit_and_end(router: Router, deployment: Deployment) -> Callable[[], Awaitable[object]]:
    async def step() -> None:
        gate = await router.gate(deployment, "bench", 200)
        assert isinstance(gate, Gate)
        await router.ended(gate, "bench", "ok", 300)

    return step


async def cas_counter(nats_url: str, routers: int, count: int, concurrency: int) -> tuple[list[float], int]:
    """The alternative: read the window's count, write count+1 if the revision did not move."""
    clients = [await nats.connect(nats_url) for _ in range(routers)]
    stores = [await c.jetstream().create_key_value(bucket="BENCH_CAS") for c in clients[:1]]
    stores += [await c.jetstream().key_value("BENCH_CAS") for c in clients[1:]]
    await stores[0].put("limited.window", b"0")
    conflicts = 0

    def step_for(kv: object) -> Callable[[], Awaitable[object]]:
        async def step() -> None:
            nonlocal conflicts
            while True:
                entry = await kv.get("limited.window")  # type: ignore[attr-defined]
                try:
                    await kv.update("limited.window", str(int(entry.value) + 1).encode(), last=entry.revision)  # type: ignore[attr-defined]
                    return
                except KeyWrongLastSequenceError:
                    conflicts += 1

        return step

    per = count // routers
    results = await asyncio.gather(*(timed(step_for(kv), per, concurrency) for kv in stores))
    for client in clients:
        await client.close()
    return [s for r in results for s in r], conflicts


async def bench(requests: int, workers: int, concurrency: int) -> None:
    with NatsServer() as server:
        clients = [await nats.connect(server.url) for _ in range(workers)]
        routers = [
            Router(c, c.jetstream(), f"w{i}", RoutingMetrics(), store_timeout_s=1.0, snapshot_interval_s=0.05)
            for i, c in enumerate(clients)
        ]
        for router in routers:
            await router.store.open()
            router.fleet.start()
        rows = ["| path | requests | p50 µs | p99 µs | note |", "|---|---|---|---|---|"]
        for deployment in (FREE, RPM_ONLY, LIMITED):
            await timed(admit_and_end(routers[0], deployment), 200, 1)  # warm up
            sequential = await timed(admit_and_end(routers[0], deployment), requests, 1)
            rows.append(summary(f"{deployment.name}, one worker, one at a time", sequential))
            began = time.perf_counter()
            together = await asyncio.gather(
                *(timed(admit_and_end(r, deployment), requests // workers, concurrency) for r in routers)
            )
            rate = requests / (time.perf_counter() - began)
            flat = [s for r in together for s in r]
            rows.append(
                summary(
                    f"{deployment.name}, {workers} workers x {concurrency} at once",
                    flat,
                    f"{rate:.0f} admissions/s",
                )
            )
        cas, conflicts = await cas_counter(server.url, workers, requests, concurrency)
        rows.append(
            summary(
                f"(alternative) KV compare-and-set counter, {workers} workers x {concurrency}",
                cas,
                f"{conflicts} conflicts ({conflicts / requests:.1f} per admission)",
            )
        )
        for router in routers:
            await router.stop()
        for client in clients:
            await client.close()
    print("\n".join(rows))
    print(json.dumps({"nats_server": "local loopback", "requests": requests, "workers": workers}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(bench(args.requests, args.workers, args.concurrency))


if __name__ == "__main__":
    main()
