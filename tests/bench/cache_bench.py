"""Benchmark (not a test): what the response cache costs and what it saves.

    python tests/bench/cache_bench.py [--requests 300] [--chunk-delay-ms 20]

Real nats-server and redis-server, a chat worker serving the built-in mock model with a pause
between its chunks (a provider's pace; 0 measures the bare machinery) and three gateway apps, all
in this process; streamed requests one at a time from an aiohttp client, the four paths below
interleaved request by request so that load from elsewhere on the machine hits them alike:

- off:    cache disabled (no key, no lookup): the baseline;
- miss:   cacheable, every prompt new: key, a memory miss, a Redis miss, the store after the answer;
- memory: the answer in this process's LRU;
- redis:  the answer in Redis only (CACHE_MEMORY_BYTES=0): one Redis round trip.

Then the pieces alone, in a tight loop: the key of a request, a memory hit (lookup and decode of
the stored frames). "A memory hit must add less than a cache miss saves": the time a memory hit
takes end to end is compared with the time a miss takes, and the miss's own overhead with off.
Prints a table; not collected by pytest (no test_ prefix), not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
import timeit
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp.test_utils import make_mocked_request

from lobe.chat_worker.deployments import Deployment, ModelCatalog, RoutedModel
from lobe.devtools.servers import NatsServer, RedisServer
from lobe.devtools.suite import start_gateway, start_worker
from lobe.gateway.cache.key import cache_key
from lobe.gateway.cache.memory import ByteLRU
from lobe.gateway.cache.replay import Replay, encode_answer
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.chat import Caller, DeltaFrame, DoneFrame, TokenUsage, UsageFrame

KEY = "sk-bench"
PROMPT = "Tell me, in about thirty words, why caches are worth having. "


@contextlib.asynccontextmanager
async def gateway(nats_url: str, **overrides: Any) -> AsyncIterator[str]:
    running = await start_gateway(
        nats_url,
        gateway_api_keys=f"{KEY}:bench:enterprise",
        billing_enabled=False,
        rate_limits_enabled=False,  # on, as in production, in `lobe bench`
        **overrides,
    )
    try:
        yield f"{running.url}/v1/chat/completions"
    finally:
        await running.stop()


async def timed(http: aiohttp.ClientSession, url: str, prompt: str) -> tuple[float, str]:
    body = {
        "model": "mock",
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": prompt}],
    }
    started = time.perf_counter()
    async with http.post(url, json=body, headers={"Authorization": f"Bearer {KEY}"}) as response:
        assert response.status == 200, await response.text()
        await response.read()
        return (time.perf_counter() - started) * 1000, response.headers.get("X-Cache", "-")


async def interleaved(
    http: aiohttp.ClientSession, paths: dict[str, tuple[str, Any, str]], n: int
) -> dict[str, list[float]]:
    """`paths`: name -> (gateway URL, prompt of request i, the X-Cache it must answer)."""
    for i in range(10):  # warm-up: connections and first-call costs
        for url, prompt, _ in paths.values():
            await timed(http, url, prompt(-1 - i))
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for i in range(n):
        for name, (url, prompt, expect) in paths.items():
            ms, cache = await timed(http, url, prompt(i))
            assert cache == expect, (name, cache, expect)
            samples[name].append(ms)
    return samples


def summary(samples: list[float]) -> tuple[float, float, float]:
    """p50, p95 and the fastest (the least disturbed by the rest of the machine)."""
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1], ordered[0]


def pieces() -> dict[str, float]:
    """Microseconds per call of the cache's own work on a hit, in a tight loop."""
    body = ChatCompletionRequest.model_validate(
        {"model": "mock", "temperature": 0, "messages": [{"role": "user", "content": PROMPT}]}
    )
    request = make_mocked_request("POST", "/v1/chat/completions")
    caller = Caller(user_id="bench")
    frames: list[DeltaFrame | UsageFrame | DoneFrame] = [
        DeltaFrame(request_id="r", seq=i, content=f"word{i} ") for i in range(1, 31)
    ]
    frames += [
        UsageFrame(request_id="r", seq=31, usage=TokenUsage(prompt_tokens=20, completion_tokens=30)),
        DoneFrame(request_id="r", seq=32, finish_reason="stop", model="mock", provider="mock"),
    ]
    stored = encode_answer(frames)
    lru = ByteLRU(64 * 1024 * 1024)
    lru.put("k", stored, expires_at=float("inf"))
    loops = 2000
    return {
        "key of a request": timeit.timeit(lambda: cache_key(request, caller, body, False), number=loops)
        / loops
        * 1e6,
        "memory hit (lookup + decode 32 frames)": timeit.timeit(
            lambda: Replay(lru.get("k", 0.0) or b""), number=loops
        )
        / loops
        * 1e6,
        "stored answer size (bytes)": float(len(stored)),
    }


async def main(n: int, chunk_delay_ms: float) -> None:
    with NatsServer() as nats, RedisServer() as redis:
        routed = RoutedModel(
            name="mock",
            deployments=[Deployment(name="mock", provider="mock", chunk_delay_s=chunk_delay_ms / 1000)],
        )
        worker = await start_worker(nats.url, ModelCatalog(models=[routed]))
        await worker.start()
        try:
            async with (
                aiohttp.ClientSession() as http,
                gateway(nats.url, cache_enabled=False) as off,
                gateway(nats.url, cache_enabled=True, cache_redis_url=redis.url) as on,
                gateway(
                    nats.url, cache_enabled=True, cache_redis_url=redis.url, cache_memory_bytes=0
                ) as redis_only,
            ):
                await timed(http, on, PROMPT)
                await asyncio.sleep(0.2)  # stored in the background, in memory and in Redis
                results = await interleaved(
                    http,
                    {
                        "off": (off, lambda i: f"{PROMPT}off {i}", "-"),
                        "miss": (on, lambda i: f"{PROMPT}miss {i}", "miss"),
                        "memory": (on, lambda i: PROMPT, "hit"),
                        "redis": (redis_only, lambda i: PROMPT, "hit"),
                    },
                    n,
                )
        finally:
            await worker.stop()
    print(f"{n} sequential streamed requests each, mock model, {chunk_delay_ms:g} ms between chunks")
    print(f"{'path':<8} {'p50 ms':>8} {'p95 ms':>8} {'min ms':>8}")
    for name, samples in results.items():
        p50, p95, fastest = summary(samples)
        print(f"{name:<8} {p50:>8.2f} {p95:>8.2f} {fastest:>8.2f}")
    off, miss, memory = (summary(results[k])[0] for k in ("off", "miss", "memory"))
    print(f"a miss adds {miss - off:+.2f} ms (p50) to an uncached request")
    print(f"a memory hit takes {memory:.2f} ms; it saves {miss - memory:.2f} ms of the miss's {miss:.2f} ms")
    for name, value in pieces().items():
        print(f"{name}: {value:.1f}" + ("" if "bytes" in name else " us"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--chunk-delay-ms", type=float, default=20.0)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.chunk_delay_ms))
