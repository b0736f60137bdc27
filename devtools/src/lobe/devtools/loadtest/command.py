"""`lobe loadtest`: measure a running suite (or the fake upstream alone) at one or more load levels."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from lobe.devtools.dev import DEV_USER, find_state_dir
from lobe.devtools.loadtest import report as reports
from lobe.devtools.loadtest.bus_client import BusTarget, connect_as_gateway
from lobe.devtools.loadtest.http_client import HttpTarget, client_session
from lobe.devtools.loadtest.load import Level, Target
from lobe.devtools.loadtest.measure import Plan, Profiling, measure
from lobe.devtools.loadtest.processes import NOT_SUITE, ProcessWatch
from lobe.devtools.loadtest.shape import MODEL, Shape
from lobe.devtools.loadtest.suite import upstream_alone
from lobe.devtools.loadtest.upstream import add_shape_arguments, shape_from
from lobe.shared.events.chat import Caller


def add_loadtest_command(commands: Any) -> None:
    parser = commands.add_parser(
        "loadtest",
        help="measure the chat path under load",
        description="Load a running suite over HTTP (the gateway) or straight onto the bus, closed loop at "
        "a concurrency or open loop at an arrival rate; every answer is validated against the fake "
        "upstream's shape. Writes <name>.json, <name>.md and plots into --out.",
    )
    target = parser.add_argument_group("target")
    target.add_argument("--target", choices=("http", "bus", "direct"), default="http",
                        help="http: the gateway(s) at --url; bus: chat.request on --nats-url; direct: start the "
                        "fake upstream alone and call it (the baseline)")  # fmt: skip
    target.add_argument("--url", default="http://127.0.0.1:3210/v1",
                        help="OpenAI base URL(s), comma-separated: requests go round robin")  # fmt: skip
    target.add_argument("--nats-url", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    target.add_argument("--api-key", default=os.environ.get("LOBE_API_KEY"),
                        help="default $LOBE_API_KEY, else lobe dev's .lobe/dev/api-key")  # fmt: skip
    target.add_argument("--model", default=MODEL)
    target.add_argument("--no-stream", action="store_true", help="http: non-streaming answers")
    target.add_argument("--cache-miss", action="store_true",
                        help="http: every request asks for the response cache and misses it (unique prompts)")  # fmt: skip
    target.add_argument("--user", default=DEV_USER, help="bus: the caller's user id")
    target.add_argument("--plan", default="enterprise", help="bus: the caller's plan")
    target.add_argument("--coalesced", action="store_true",
                        help="accept fewer, larger deltas with the same text (a path that batches chunks)")  # fmt: skip
    target.add_argument("--timeout", type=float, default=60.0, help="seconds for one whole answer")
    add_shape_arguments(target)  # the answer every request must get (and, for --target direct, gives)

    load = parser.add_argument_group("load")
    mode = load.add_mutually_exclusive_group()
    mode.add_argument("--concurrency", help="closed loop: comma-separated levels (default 8)")
    mode.add_argument("--rate", help="open loop: arrivals per second, comma-separated levels")
    size = load.add_mutually_exclusive_group()
    size.add_argument("--requests", type=int, help="per level (default 1000)")
    size.add_argument("--duration", type=float, help="seconds per level")
    load.add_argument("--warmup", type=int, default=20, help="unmeasured requests first")

    out = parser.add_argument_group("report")
    out.add_argument("--watch-pid", type=int, action="append", default=[],
                     help="measure CPU and memory of this process and its descendants (e.g. lobe dev's pid)")  # fmt: skip
    out.add_argument("--sample-interval", type=float, default=1.0, help="seconds between memory/CPU readings")
    out.add_argument("--out", type=Path, default=Path("loadtest-report"))
    out.add_argument("--name", default="loadtest", help="file stem of the report")
    out.add_argument("--label", help="name of the measurement in the report")
    out.add_argument(
        "--profile", default="", help="py-spy these process kinds during each level (gateway,chat-worker)"
    )
    out.add_argument("--profile-seconds", type=int, default=10)
    out.add_argument("--max-rss-growth-mb", type=float,
                     help="fail when any suite process's RSS grows more than this from start to end")  # fmt: skip
    out.add_argument("--quiet", action="store_true", help="no progress bar")


def levels_from(args: argparse.Namespace) -> list[Level]:
    requests = args.requests if args.duration is None else None
    if requests is None and args.duration is None:
        requests = 1000
    if args.rate:
        return [Level("open", float(v), requests, args.duration) for v in args.rate.split(",")]
    return [Level("closed", float(v), requests, args.duration) for v in (args.concurrency or "8").split(",")]


def run(args: argparse.Namespace) -> int:
    try:
        levels = levels_from(args)
    except ValueError as exc:
        print(f"lobe loadtest: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run(args, levels))
    except ConnectionError as exc:
        print(f"lobe loadtest: {exc}", file=sys.stderr)
        return 2


async def _run(args: argparse.Namespace, levels: list[Level]) -> int:
    shape = shape_from(args)
    async with _target(args, shape) as (target, description, pids):
        plan = Plan(
            label=args.label or args.target,
            levels=levels,
            target=description,
            warmup=args.warmup,
            sample_interval_s=args.sample_interval,
            progress=not args.quiet,
            profiling=Profiling(
                [k for k in args.profile.split(",") if k], args.out, args.name, args.profile_seconds
            )
            if args.profile
            else None,
        )
        report = await measure(target, plan, ProcessWatch([*args.watch_pid, *pids]))
    written = reports.write(report, args.out, args.name)
    print(reports.latency_table(report["levels"]))
    print(f"wrote {', '.join(str(p) for p in written)}")
    return verdict(report, args.max_rss_growth_mb)


def verdict(report: dict[str, Any], max_growth_mb: float | None) -> int:
    """1 when an answer failed or a suite process grew past the bound, with the reason on stderr."""
    failed = []
    if report["errors"]:
        failed.append(f"{report['errors']} answers failed")
    if max_growth_mb is not None:
        for row in report["memory"]:
            if row["kind"] not in NOT_SUITE and row["growth_mb"] > max_growth_mb:
                failed.append(
                    f"{row['kind']} (pid {row['pid']}) grew {row['growth_mb']:.1f} MiB > {max_growth_mb:g}"
                )
    for reason in failed:
        print(f"lobe loadtest: {reason}", file=sys.stderr)
    return 1 if failed else 0


@contextlib.asynccontextmanager
async def _target(
    args: argparse.Namespace, shape: Shape
) -> AsyncIterator[tuple[Target, dict[str, Any], list[int]]]:
    description: dict[str, Any] = {"target": args.target, "answer": shape.describe(), "model": args.model}
    if args.target == "bus":
        nc = await connect_as_gateway(args.nats_url)
        try:
            caller = Caller(user_id=args.user, plan=args.plan)
            bus = BusTarget(
                nc, shape, model=args.model, caller=caller, coalesced=args.coalesced, deadline_s=args.timeout
            )
            yield bus, description | {"nats": args.nats_url}, []
        finally:
            await nc.close()
        return
    async with contextlib.AsyncExitStack() as stack:
        pids: list[int] = []
        urls = args.url.split(",")
        api_key = args.api_key or _dev_api_key() or "none"
        if args.target == "direct":
            url, pid = await stack.enter_async_context(upstream_alone(shape))
            urls, pids = [url], [pid]
        http = await stack.enter_async_context(client_session(args.timeout))
        stream = not args.no_stream
        target = HttpTarget(
            http, urls, api_key, shape, model=args.model, stream=stream, coalesced=args.coalesced,
            cache_miss=args.cache_miss,
        )  # fmt: skip
        cache = "asked, always a miss" if args.cache_miss else "not asked"
        yield target, description | {"urls": ",".join(urls), "stream": stream, "cache": cache}, pids


def _dev_api_key() -> str | None:
    path = find_state_dir() / "api-key"
    return path.read_text().strip() if path.exists() else None
