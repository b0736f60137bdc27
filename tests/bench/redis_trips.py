"""Benchmark (not a test): Redis round trips and CPU per chat request, with the rate limits and the
response cache on one Redis, as in production.

    python tests/bench/redis_trips.py [--requests 500] [--concurrency 32]

Real nats-server and redis-server, a chat worker serving the built-in mock model and two gateway
apps (rate limits on, with limits no request reaches; the cache on the rate limits' Redis; the
second with no memory tier), all in this process. Streamed requests, `--concurrency` at a time:

- miss:      cacheable, every prompt new (the key, a memory miss, a Redis miss, the store after);
- redis hit: the same prompts through the second gateway (its memory is empty: Redis has them);
- off:       not cacheable (temperature 1): the rate limits alone.

Per request, from the Redis server's INFO (read events are round trips: a pipeline arrives in
one read; the settle of the limits after each answer is one of them, the store of a miss another)
and the commands it ran, and this process's CPU (client, gateway and worker together:
compare runs of one code base against another, the client and worker being the same).
Prints a table; not collected by pytest (no test_ prefix), not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from lobe.chat_worker.deployments import Deployment, ModelCatalog, RoutedModel
from lobe.devtools.servers import NatsServer, RedisServer
from lobe.devtools.suite import start_gateway, start_worker

KEY = "sk-bench"
LIMITS = (
    "default_tier: bench\n"
    "tiers: {bench: {requests: 100000000, tokens: 100000000000, concurrent: 100000}}\n"
    "plans: {free: bench}\n"
    "per_ip: {requests: 100000000, window_s: 900}\n"
)
# Script runs (the limit's, the settle's) and the lookups' PTTL (one per Redis read of the cache).
# Not GET or SET: the scripts' own calls are counted under them too.
COMMANDS = ("evalsha", "pttl")


@contextlib.asynccontextmanager
async def gateway(nats_url: str, redis_url: str, limits: Path, **overrides: Any) -> AsyncIterator[str]:
    running = await start_gateway(
        nats_url,
        gateway_api_keys=f"{KEY}:bench:free",
        billing_enabled=False,
        rate_limits_enabled=True,
        rate_limits_file=limits,
        redis_url=redis_url,
        cache_enabled=True,
        **overrides,
    )
    try:
        yield f"{running.url}/v1/chat/completions"
    finally:
        await running.stop()


async def ask(http: aiohttp.ClientSession, url: str, prompt: str, temperature: float) -> tuple[float, str]:
    body = {
        "model": "mock",
        "temperature": temperature,
        "stream": True,
        "messages": [{"role": "user", "content": prompt}],
    }
    started = time.perf_counter()
    async with http.post(url, json=body, headers={"Authorization": f"Bearer {KEY}"}) as response:
        assert response.status == 200, await response.text()
        await response.read()
        return (time.perf_counter() - started) * 1000, response.headers.get("X-Cache", "-")


async def redis_counts(redis: aioredis.Redis) -> dict[str, int]:
    stats = await redis.info("stats")
    counts = {"round trips": int(stats["total_reads_processed"])}
    commands = await redis.info("commandstats")
    for name in COMMANDS:
        counts[name] = int(commands.get(f"cmdstat_{name}", {}).get("calls", 0))
    return counts


async def phase(
    http: aiohttp.ClientSession,
    redis: aioredis.Redis,
    url: str,
    prompts: list[str],
    temperature: float,
    expect: str,
    concurrency: int,
) -> dict[str, float]:
    await asyncio.sleep(0.5)  # the previous phase's stores and settles are done
    before = await redis_counts(redis)
    cpu = time.process_time()
    queue = list(reversed(prompts))
    latencies: list[float] = []
    unexpected = 0  # a loaded machine can time a Redis read or store out: counted, not fatal

    async def client() -> None:
        nonlocal unexpected
        while queue:
            ms, cache = await ask(http, url, queue.pop(), temperature)
            unexpected += cache != expect
            latencies.append(ms)

    await asyncio.gather(*(client() for _ in range(concurrency)))
    await asyncio.sleep(0.5)  # stores and settles after the answers are part of the request
    cpu = time.process_time() - cpu
    after = await redis_counts(redis)
    n = len(prompts)
    result = {f"{k} per request": (after[k] - before[k]) / n for k in after if after[k] != before[k]}
    # INFO's own: two calls, one read each, per measurement.
    result["round trips per request"] = (after["round trips"] - before["round trips"] - 2) / n
    result["CPU per request (ms)"] = cpu / n * 1000
    result["p50 (ms)"] = statistics.median(latencies)
    result["unexpected X-Cache per request"] = unexpected / n
    return result


async def main(n: int, concurrency: int) -> None:
    with NatsServer() as nats, RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
        limits = Path(tmp) / "limits.yaml"
        limits.write_text(LIMITS)
        routed = RoutedModel(name="mock", deployments=[Deployment(name="mock", provider="mock")])
        worker = await start_worker(nats.url, ModelCatalog(models=[routed]))
        await worker.start()
        redis = aioredis.Redis.from_url(server.url)
        try:
            async with (
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http,
                gateway(nats.url, server.url, limits) as first,
                gateway(nats.url, server.url, limits, cache_memory_bytes=0) as second,
            ):
                for i in range(20):  # warm-up: connections, scripts loaded, first-call costs
                    await ask(http, first, f"warm-up {i}", 1)
                    await ask(http, second, f"warm-up {i}", 1)
                prompts = [f"Tell me about caches, take {i}." for i in range(n)]
                results = {
                    "off": await phase(http, redis, first, prompts, 1, "-", concurrency),
                    "miss": await phase(http, redis, first, prompts, 0, "miss", concurrency),
                    "redis hit": await phase(http, redis, second, prompts, 0, "hit", concurrency),
                }
        finally:
            await redis.aclose()
            await worker.stop()
    print(f"{n} streamed requests per path, {concurrency} at a time, mock model")
    rows = sorted({row for result in results.values() for row in result})
    print(f"{'per request':<28}" + "".join(f"{name:>12}" for name in results))
    for row in rows:
        label = row.removesuffix(" per request")
        print(f"{label:<28}" + "".join(f"{results[name].get(row, 0.0):>12.2f}" for name in results))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.concurrency))
