"""Benchmark (not a test): the time the gateway path adds to a streamed chat completion.

    python tests/bench/gateway_overhead.py [--sequential 300] [--concurrent 2000] [--concurrency 32]

Starts a real nats-server, a fake OpenAI upstream (its own process) replaying a recorded stream
one SSE event per HTTP chunk with a pause between events, one chat worker and one gateway
(`python -m lobe.chat_worker` / `python -m lobe.gateway`, MODELS_FILE routing `bench` to the fake
upstream). It then measures time to first token and total time with aiohttp clients, calling
(a) the fake upstream directly and (b) the gateway, sequentially and at a fixed concurrency, and
writes the table into docs/performance.md (section "Gateway added latency") and a plot into
docs/img/. Not collected by pytest (no test_ prefix) and not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil
from overhead_report import Sample, Series, machine, render, write_plot, write_section

from lobe.billing.admin import admin_session
from lobe.billing.migrations import apply_migrations
from lobe.devtools.fake_upstream import FakeUpstream, Reply
from lobe.devtools.ports import free_port
from lobe.devtools.provider_fixtures import load
from lobe.devtools.servers import NatsServer, PostgresServer, RedisServer

REPO = Path(__file__).resolve().parents[2]
TRANSCRIPT = "openai/chat_stream_text.sse"
API_KEY = "sk-bench"
BODY = {"model": "bench", "messages": [{"role": "user", "content": "What is the capital of the UK?"}]}


async def serve_upstream(event_delay_s: float) -> None:
    """Child-process mode: the fake upstream, answering every request with the transcript."""
    transcript = load(TRANSCRIPT)
    reply = Reply(
        transcript.body, 200, transcript.content_type, split_events=True, chunk_delay_s=event_delay_s
    )
    upstream = await FakeUpstream(default=reply).start()
    print(upstream.url, flush=True)
    await asyncio.Event().wait()


async def wait_http(url: str, proc: asyncio.subprocess.Process, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"{proc} exited with {proc.returncode} before {url} answered")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} not ready in {timeout_s}s")


@dataclass
class Stack:
    direct_url: str
    gateway_url: str
    pids: dict[str, int]  # process name → pid, to read their CPU time

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds per process, children included (PostgreSQL works in its backends)."""
        totals = {}
        for name, pid in self.pids.items():
            root = psutil.Process(pid)
            times = [p.cpu_times() for p in (root, *root.children(recursive=True))]
            totals[name] = sum(t.user + t.system for t in times)
        return totals


@contextlib.asynccontextmanager
async def stack(event_delay_s: float, billing: bool) -> AsyncIterator[Stack]:
    """nats, fake upstream, worker, gateway (and billing with PostgreSQL), each in its own process."""
    procs: list[asyncio.subprocess.Process] = []
    with contextlib.ExitStack() as servers, tempfile.TemporaryDirectory(prefix="lobe-bench-") as tmp:
        nats = servers.enter_context(NatsServer())
        redis = servers.enter_context(RedisServer())  # the gateway's rate limits, as in production
        try:
            upstream = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--serve-upstream", "--event-delay-ms", str(event_delay_s * 1000),
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            procs.append(upstream)
            assert upstream.stdout is not None
            upstream_url = (await asyncio.wait_for(upstream.stdout.readline(), 30)).decode().strip()
            models = Path(tmp) / "models.yaml"
            deployment = {"name": "fake-openai", "provider": "openai", "base_url": f"{upstream_url}/v1"}
            models.write_text(json.dumps({"models": [{"name": "bench", "deployments": [deployment]}]}))
            base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
            common = {
                **base,
                "NATS_URL": nats.url,
                "REDIS_URL": redis.url,
                "LOG_LEVEL": "WARNING",
                "LOG_FORMAT": "text",
            }
            ops_port, gateway_port = free_port(), free_port()
            worker_env = {
                **common,
                "MODELS_FILE": str(models),
                "OPS_PORT": str(ops_port),
                "OPENAI_API_KEY": "k",
            }
            worker = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "lobe.chat_worker", env=worker_env
            )
            procs.append(worker)
            await wait_http(f"http://127.0.0.1:{ops_port}/health/ready", worker)
            pids = {"chat worker": worker.pid, "nats-server": nats.pid or 0, "redis-server": redis.pid or 0}
            if billing:
                # The production path: every request is admitted against the user's budget and
                # priced for its final chunk, over NATS to billing and its PostgreSQL.
                postgres = servers.enter_context(PostgresServer(Path(tmp) / "pg", durable=False))
                dsn = postgres.dsn("postgres")
                await apply_migrations(dsn)
                async with admin_session(dsn, nats.url) as admin:
                    await admin.create_user("bench", "enterprise")
                billing_port = free_port()
                billing_proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "lobe.billing",
                    env={**common, "DATABASE_URL": dsn, "OPS_PORT": str(billing_port)},
                )  # fmt: skip
                procs.append(billing_proc)
                await wait_http(f"http://127.0.0.1:{billing_port}/health/ready", billing_proc)
                pids |= {"billing": billing_proc.pid, "postgres": postgres.pid or 0}
            gateway_env = {
                **common,
                "GATEWAY_PORT": str(gateway_port),
                "OPS_PORT": "0",
                "GATEWAY_API_KEYS": f"{API_KEY}:bench:enterprise",
                "BILLING_ENABLED": "true" if billing else "false",
            }
            gateway = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "lobe.gateway", env=gateway_env
            )
            procs.append(gateway)
            gateway_url = f"http://127.0.0.1:{gateway_port}"
            await wait_http(f"{gateway_url}/api/ready", gateway)
            pids = {"gateway": gateway.pid, **pids}
            yield Stack(f"{upstream_url}/v1/chat/completions", f"{gateway_url}/v1/chat/completions", pids)
        finally:
            for proc in reversed(procs):
                if proc.returncode is None:
                    proc.terminate()
                    try:
                        await asyncio.wait_for(proc.wait(), 10)
                    except TimeoutError:
                        proc.kill()


async def one_request(http: aiohttp.ClientSession, url: str, expected_text: str) -> Sample:
    """Stream one answer; TTFT is the first non-empty content delta, total the end of the body."""
    started = time.perf_counter()
    ttft: float | None = None
    text: list[str] = []
    payload = {**BODY, "stream": True}
    async with http.post(url, json=payload, headers={"Authorization": f"Bearer {API_KEY}"}) as response:
        if response.status != 200:
            await response.read()
            return Sample(0.0, time.perf_counter() - started, ok=False)
        async for line in response.content:
            if not line.startswith(b"data: {"):
                continue
            chunk = json.loads(line[6:])
            choices = chunk.get("choices") or [{}]
            content = (choices[0].get("delta") or {}).get("content")
            if content:
                ttft = ttft or time.perf_counter() - started
                text.append(content)
    total = time.perf_counter() - started
    return Sample(ttft or total, total, ok="".join(text) == expected_text)


async def run(label: str, count: int, concurrency: int, call: Callable[[], Awaitable[Sample]]) -> Series:
    samples: list[Sample] = []
    next_index = 0
    began = time.perf_counter()

    async def lane() -> None:
        nonlocal next_index
        while next_index < count:
            next_index += 1
            samples.append(await call())
            if len(samples) % max(1, count // 20) == 0 or len(samples) == count:
                rate = len(samples) / (time.perf_counter() - began)
                print(f"\r  {label:<28} {len(samples):>5}/{count}  {rate:7.1f} req/s", end="", flush=True)

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    print()
    return Series(label, concurrency, samples, time.perf_counter() - began)


async def benchmark(args: argparse.Namespace) -> None:
    expected_text = load(TRANSCRIPT).expected["choices"][0]["text"]
    load_before = os.getloadavg()
    print(f"starting nats, fake upstream, worker and gateway (load average {load_before[0]:.2f}) ...")
    results: list[tuple[Series, Series]] = []
    async with stack(args.event_delay_ms / 1000, args.billing) as running:
        direct_url, gateway_url = running.direct_url, running.gateway_url
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=60)
        ) as http:
            for url in (direct_url, gateway_url):  # warm-up: connections, imports, JIT-free caches
                await asyncio.gather(*(one_request(http, url, expected_text) for _ in range(args.warmup)))
            for count, concurrency in ((args.sequential, 1), (args.concurrent, args.concurrency)):
                mode = "sequential" if concurrency == 1 else f"concurrency {concurrency}"
                pair = []
                for name, url in (("direct", direct_url), ("gateway", gateway_url)):
                    call = functools.partial(one_request, http, url, expected_text)
                    cpu_before = running.cpu_s()
                    series = await run(f"{name}, {mode}", count, concurrency, call)
                    series.cpu_s = {k: v - cpu_before[k] for k, v in running.cpu_s().items()}
                    pair.append(series)
                results.append((pair[0], pair[1]))
    load_after = os.getloadavg()
    table = render(results)
    print()
    print(table)
    failures = sum(not s.ok for pair in results for series in pair for s in series.samples)
    if failures:
        print(f"WARNING: {failures} answers were incomplete or wrong")
    plot = write_plot(results, REPO / "docs" / "img" / "gateway_overhead.png")
    write_section(
        REPO / "docs" / "performance.md",
        machine(load_before, load_after),
        args,
        table,
        plot.relative_to(REPO / "docs"),
        failures,
        load(TRANSCRIPT).body.count(b"\n\n"),
    )
    print(f"wrote docs/performance.md and {plot.relative_to(REPO)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequential", type=int, default=300, help="requests per path, one at a time")
    parser.add_argument("--concurrent", type=int, default=2000, help="requests per path at --concurrency")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests per path first")
    parser.add_argument(
        "--event-delay-ms", type=float, default=10.0, help="upstream pause between SSE events"
    )
    parser.add_argument(
        "--billing",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run billing and admit every request against a budget (the production path)",
    )
    parser.add_argument("--serve-upstream", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        asyncio.run(serve_upstream(args.event_delay_ms / 1000))
    else:
        asyncio.run(benchmark(args))


if __name__ == "__main__":
    main()
