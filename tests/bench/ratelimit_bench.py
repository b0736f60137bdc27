"""Benchmark (not a test): the client-side CPU of the gateway's per-user rate limits per request.

    python tests/bench/ratelimit_bench.py [--split] [--traced | --unsampled]

A real redis-server; the limiter alone (no HTTP, no bus), 3,000 requests 32 at a time for one
enterprise user, each admitted (request window, token window, a place in flight) and settled
(token correction, place given back) as lobe.gateway.chat does: in one script run for a small
body, or (`--split`) the request window before the parse and the token window after it. Median of
five runs. To compare with another revision, put its services/gateway/src first on PYTHONPATH.

Measured (issue 22, loaded 2-core host, three interleaved rounds): 970d930 0.30-0.34 ms of CPU
per request; one run 0.35-0.39 ms; split 0.40-0.44 ms.

Tracing (issue 19): each request runs in a span of its own, as under the gateway's HTTP span;
`--traced` instruments the Redis client as the gateway does (lobe.gateway.redis_pool) and samples
every request, `--unsampled` instruments it and samples none (a ratio sampler at 0: the cost of a
request sampling drops), neither leaves it uninstrumented. Spans are recorded, not exported.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBasedTraceIdRatio
from redis.asyncio import Redis

from lobe.devtools.servers import RedisServer
from lobe.gateway.ratelimit import limiter
from lobe.gateway.ratelimit.config import load_rate_limits
from lobe.gateway.ratelimit.windows import SlidingWindows
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.chat import Caller

N, C = 3000, 32
BODY = ChatCompletionRequest.model_validate(
    {"model": "mock", "messages": [{"role": "user", "content": "hi there"}], "max_tokens": 16}
)
SPLIT = "--split" in sys.argv
TWO_STEPS = hasattr(limiter.RateLimiter, "admit_tokens")  # False before issue 22
TRACED, UNSAMPLED = "--traced" in sys.argv, "--unsampled" in sys.argv


class Counted(SpanExporter):
    """Counts the Redis spans; keeping them would grow the heap and time the collector."""

    redis = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.redis += sum(1 for span in spans if span.name != "request")
        return SpanExportResult.SUCCESS


SPANS = Counted()
PROVIDER = TracerProvider(sampler=ParentBasedTraceIdRatio(0.0) if UNSAMPLED else ALWAYS_ON)
PROVIDER.add_span_processor(SimpleSpanProcessor(SPANS))
TRACER = PROVIDER.get_tracer("bench")


async def run(url: str) -> tuple[float, float]:
    redis = Redis.from_url(url)
    if TRACED or UNSAMPLED:
        RedisInstrumentor.instrument_client(redis, tracer_provider=PROVIDER)
    limits = limiter.RateLimiter(SlidingWindows(redis), load_rate_limits(), "open")
    caller = Caller(user_id="bench-" + uuid.uuid4().hex[:8], plan="enterprise")
    slots = asyncio.Semaphore(C)

    async def one() -> None:
        async with slots:
            with TRACER.start_as_current_span("request"):
                await admit_and_settle()

    async def admit_and_settle() -> None:
        request: Any = {}  # the limiter only keeps its headers on the request
        request_id = uuid.uuid4().hex
        if not TWO_STEPS:
            admission = await limits.admit(request, caller, request_id, BODY)  # type: ignore[arg-type]
        elif SPLIT:
            admission = await limits.admit(request, caller, request_id, in_flight=True)
            await limits.admit_tokens(request, admission, BODY)
        else:
            admission = await limits.admit(request, caller, request_id, True, BODY)
        limits.settle(admission, 12)

    await asyncio.gather(*(one() for _ in range(200)))  # warm-up: connections, scripts loaded
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(N)))
    await limits.close()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await redis.aclose()
    return cpu / N * 1000, N / wall


async def main() -> None:
    with RedisServer() as server:
        results = [await run(server.url) for _ in range(5)]
    label = "before issue 22" if not TWO_STEPS else ("split" if SPLIT else "one run")
    label += ", Redis traced" if TRACED else ", Redis traced, unsampled" if UNSAMPLED else ""
    label += f", {SPANS.redis / (5 * (N + 200)):.1f} Redis spans/request" if TRACED else ""
    cpu = statistics.median(r[0] for r in results)
    rate = statistics.median(r[1] for r in results)
    print(f"{label}: {cpu:.3f} ms CPU/request, {rate:.0f} requests/s (median of 5, N={N}, c={C})")


if __name__ == "__main__":
    asyncio.run(main())
