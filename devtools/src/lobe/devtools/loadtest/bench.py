"""`lobe bench`: the standard measurements on a fresh suite, written into docs/.

- `standard`: the fake upstream alone (direct), then `lobe dev` (one gateway, one worker, billing
  on, an enterprise user) over HTTP at concurrency 1/8/32/128 and on the bus at 1/32: added time
  to first token and total, answers per second, CPU per answer per process, 0 errors required.
- `profile`: py-spy flame graphs of the gateway and the worker at concurrency 32.
- `scaling`: 1/2/4 workers by 1/2 gateways at concurrency 32 and 128: where throughput stops
  growing, which process is busiest, CPU per 1,000 answers.
- `soak`: a steady open-loop rate for a duration; RSS of every process at start and end, p99 over
  time; fails when a suite process grows past the bound.
- `litellm`: the fake upstream alone, LiteLLM's proxy (pinned, in its own venv: litellm_proxy)
  and the suite over HTTP, one after the other in one run at concurrency 1/8/32/128, each
  answer validated the same way: the ratio measured, not quoted.

Each measurement also lands as JSON, markdown and PNG under --out (docs/bench).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from lobe.devtools.dev import DEV_USER
from lobe.devtools.loadtest import bench_doc, litellm_proxy, machine, plots
from lobe.devtools.loadtest import report as reports
from lobe.devtools.loadtest.bus_client import BusTarget, connect_as_gateway
from lobe.devtools.loadtest.command import verdict
from lobe.devtools.loadtest.http_client import HttpTarget, client_session
from lobe.devtools.loadtest.load import Level
from lobe.devtools.loadtest.measure import Plan, Profiling, measure
from lobe.devtools.loadtest.processes import ProcessWatch
from lobe.devtools.loadtest.shape import MODEL, Shape
from lobe.devtools.loadtest.suite import RunningSuite, lobe_dev, upstream_alone
from lobe.devtools.loadtest.trace_sink import trace_sink
from lobe.devtools.loadtest.upstream import add_shape_arguments, shape_from
from lobe.shared.events.chat import Caller

STANDARD_CONCURRENCY = (1, 8, 32, 128)
BUS_CONCURRENCY = (1, 32)
SCALING = ((1, 1), (1, 2), (1, 4), (2, 1), (2, 2), (2, 4))  # (gateways, workers)
SCALING_CONCURRENCY = (32, 128)
Report = dict[str, Any]


def add_bench_command(commands: Any) -> None:
    parser = commands.add_parser("bench", help="the standard benchmarks on a fresh suite, into docs/")
    parser.add_argument("suite", choices=("standard", "profile", "scaling", "soak", "litellm"))
    parser.add_argument("--out", type=Path, default=Path("docs/bench"), help="reports (JSON, markdown, PNG)")
    parser.add_argument("--doc", type=Path, default=Path("docs/performance.md"), help="sections rewritten")
    parser.add_argument("--requests", type=int, default=2000, help="per level (sequential: a quarter)")
    parser.add_argument("--duration", type=float, default=600.0, help="soak: seconds")
    parser.add_argument("--rate", type=float, default=50.0, help="soak: arrivals per second")
    parser.add_argument("--max-rss-growth-mb", type=float, default=30.0, help="soak: bound per process")
    parser.add_argument("--wait-quiet", type=float, default=0.0,
                        help="first wait up to this many seconds for the machine to be quiet")  # fmt: skip
    parser.add_argument("--require-quiet", action="store_true",
                        help="exit 3 without measuring when the machine is still loaded after --wait-quiet")  # fmt: skip
    parser.add_argument("--cache-miss", action="store_true",
                        help="every request through the gateway asks the response cache and misses it")  # fmt: skip
    parser.add_argument("--tracing", action="store_true",
                        help="every service exports every span over OTLP/HTTP, as the production values do, "
                        "to a receiver in this process")  # fmt: skip
    parser.add_argument("--litellm-venv", type=Path, default=litellm_proxy.DEFAULT_VENV,
                        help="litellm: the virtual environment LiteLLM's proxy is installed into (once)")  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_shape_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if not wait_quiet(args.wait_quiet) and args.require_quiet:
        print(
            f"lobe bench: the machine is still loaded ({machine.loadavg()[0]:.2f}); not measuring",
            file=sys.stderr,
        )
        return 3
    suites = {"standard": standard, "profile": profile, "scaling": scaling, "soak": soak, "litellm": litellm}
    return asyncio.run(suites[args.suite](args))


def wait_quiet(limit_s: float, poll_s: float = 15.0) -> bool:
    """Other work on a shared machine skews every number: wait (bounded) for it to pass. True
    when the machine is quiet."""
    deadline = time.monotonic() + limit_s
    while not (quiet := machine.loadavg()[0] / machine.cpus() < machine.QUIET_SHARE):
        if time.monotonic() >= deadline:
            break
        print(
            f"lobe bench: load average {machine.loadavg()[0]:.2f}; waiting for a quiet machine",
            file=sys.stderr,
        )
        time.sleep(poll_s)
    return quiet


@contextlib.asynccontextmanager
async def _suite(
    args: argparse.Namespace, shape: Shape, workers: int = 1, gateways: int = 1
) -> AsyncIterator[RunningSuite]:
    """`lobe dev` for one measurement; with --tracing, exporting every span to a receiver here. A
    traced run in which no span arrived measured the wrong thing: it fails."""
    if not args.tracing:
        async with lobe_dev(shape, workers=workers, gateways=gateways) as suite:
            yield suite
        return
    async with trace_sink() as sink:
        async with lobe_dev(shape, workers=workers, gateways=gateways, trace_endpoint=sink.url) as suite:
            yield suite
        # After the suite stopped: each service exports what it still held on its way out.
        if sink.exports == 0:
            raise RuntimeError("--tracing: no span reached the receiver")
        print(
            f"lobe bench: {sink.exports} trace exports, {sink.received_bytes / 2**20:.1f} MiB of spans",
            file=sys.stderr,
        )


def _levels(concurrency: tuple[int, ...], requests: int) -> list[Level]:
    return [Level("closed", c, requests=max(50, requests // 4) if c == 1 else requests) for c in concurrency]


async def _http(
    suite_urls: list[str],
    api_key: str,
    shape: Shape,
    plan: Plan,
    roots: list[int],
    cache_miss: bool = False,
    root_kinds: Mapping[int, str] | None = None,
) -> Report:
    async with client_session(60) as http:
        target = HttpTarget(http, suite_urls, api_key, shape, model=MODEL, cache_miss=cache_miss)
        return await measure(target, plan, ProcessWatch(roots, root_kinds=root_kinds or {}))


async def _bus(suite: RunningSuite, shape: Shape, plan: Plan) -> Report:
    nc = await connect_as_gateway(suite.nats_url, *suite.nats_credentials)
    try:
        caller = Caller(user_id=DEV_USER, plan="enterprise")
        return await measure(
            BusTarget(nc, shape, model=MODEL, caller=caller), plan, ProcessWatch([suite.pid])
        )
    finally:
        await nc.close()


def _plan(
    label: str, levels: list[Level], target: dict[str, Any], args: argparse.Namespace, **kw: Any
) -> Plan:
    return Plan(label, levels, target, progress=not args.quiet, **kw)


async def standard(args: argparse.Namespace) -> int:
    shape = shape_from(args)
    levels = _levels(STANDARD_CONCURRENCY, args.requests)
    described = {"answer": shape.describe()}
    async with upstream_alone(shape) as (url, pid):
        direct = await _http(
            [url], "none", shape, _plan("direct", levels, described | {"path": "direct"}, args), [pid]
        )
    async with _suite(args, shape) as suite:
        gateway = _plan("suite", levels, described | {"path": "gateway SSE, billing on"}, args)
        over_http = await _http(
            suite.gateway_urls, suite.api_key, shape, gateway, [suite.pid], args.cache_miss
        )
        bus_levels = _levels(BUS_CONCURRENCY, args.requests)
        over_bus = await _bus(
            suite, shape, _plan("bus", bus_levels, described | {"path": "chat.request on NATS"}, args)
        )
    results = {"direct": direct, "suite": over_http, "bus": over_bus}
    for name, result in results.items():
        reports.write(result, args.out, f"standard-{name}")
    plots.against_load([direct, over_http, over_bus], args.out / "standard-load.png")
    bench_doc.write_standard(args.doc, results, args.out / "standard-load.png", args)
    return max(verdict(result, None) for result in results.values())


async def profile(args: argparse.Namespace) -> int:
    shape = shape_from(args)
    out = args.doc.parent / "img"
    async with _suite(args, shape) as suite:
        profiling = Profiling(("gateway", "chat-worker"), out, "flame", duration_s=10, rate_hz=200)
        plan = _plan(
            "profile",
            [Level("closed", 32, duration_s=14)],
            {"path": "gateway SSE"},
            args,
            profiling=profiling,
        )
        result = await _http(suite.gateway_urls, suite.api_key, shape, plan, [suite.pid], args.cache_miss)
    reports.write(result, args.out, "profile")
    graphs = {kind: out / f"flame-c32-{kind}.svg" for kind in profiling.kinds}
    bench_doc.write_profile(args.doc, result, graphs, args)
    return verdict(result, None)


async def scaling(args: argparse.Namespace) -> int:
    shape = shape_from(args)
    results: list[tuple[int, int, Report]] = []
    for gateways, workers in SCALING:
        async with _suite(args, shape, workers=workers, gateways=gateways) as suite:
            label = f"{gateways} gateway{'s' * (gateways > 1)}, {workers} worker{'s' * (workers > 1)}"
            plan = _plan(label, _levels(SCALING_CONCURRENCY, args.requests), {"path": "gateway SSE"}, args)
            result = await _http(suite.gateway_urls, suite.api_key, shape, plan, [suite.pid], args.cache_miss)
        reports.write(result, args.out, f"scaling-g{gateways}-w{workers}")
        results.append((gateways, workers, result))
    bench_doc.write_scaling(args.doc, results, args)
    return max(verdict(result, None) for _, _, result in results)


async def soak(args: argparse.Namespace) -> int:
    shape = shape_from(args)
    async with _suite(args, shape) as suite:
        level = Level("open", args.rate, duration_s=args.duration)
        plan = _plan("soak", [level], {"path": "gateway SSE", "rate": args.rate}, args, sample_interval_s=5.0)
        result = await _http(suite.gateway_urls, suite.api_key, shape, plan, [suite.pid], args.cache_miss)
    reports.write(result, args.out, "soak")
    bench_doc.write_soak(args.doc, result, args.max_rss_growth_mb, args.out / "soak-time.png", args)
    print(reports.memory_table(result["memory"]))
    return verdict(result, args.max_rss_growth_mb)


async def litellm(args: argparse.Namespace) -> int:
    """Direct, LiteLLM's proxy and the suite, each over HTTP at the standard set's levels. LiteLLM
    and the direct measurement share one fake upstream; the suite runs its own, as in `standard`."""
    executable = await asyncio.to_thread(litellm_proxy.ensure_venv, args.litellm_venv)
    version = litellm_proxy.pinned_version()
    shape = shape_from(args)
    levels = _levels(STANDARD_CONCURRENCY, args.requests)
    described = {"answer": shape.describe()}
    async with upstream_alone(shape) as (upstream_url, upstream_pid):
        plan = _plan("direct", levels, described | {"path": "direct"}, args)
        direct = await _http([upstream_url], "none", shape, plan, [upstream_pid])
        with tempfile.TemporaryDirectory(prefix="lobe-bench-litellm-") as state:
            async with litellm_proxy.litellm_proxy(executable, upstream_url, MODEL, Path(state)) as proxy:
                path = f"LiteLLM proxy {version}, {litellm_proxy.WORKERS} workers"
                target = described | {"path": path, "litellm": version, "settings": litellm_proxy.SETTINGS}
                plan = _plan("litellm", levels, target, args)
                roots, kinds = [proxy.pid, upstream_pid], {proxy.pid: "litellm"}
                over_litellm = await _http([proxy.url], proxy.api_key, shape, plan, roots, root_kinds=kinds)
    async with _suite(args, shape) as suite:
        plan = _plan("suite", levels, described | {"path": "gateway SSE, billing on"}, args)
        over_suite = await _http(suite.gateway_urls, suite.api_key, shape, plan, [suite.pid], args.cache_miss)
    results = {"direct": direct, "litellm": over_litellm, "suite": over_suite}
    for name, result in results.items():
        reports.write(result, args.out, f"litellm-{name}")
    plot = plots.against_load(list(results.values()), args.out / "litellm-load.png")
    bench_doc.write_litellm(args.doc, results, plot, args)
    return max(verdict(result, None) for result in results.values())
