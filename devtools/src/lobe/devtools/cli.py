"""The `lobe` command: `lobe dev`, `lobe db …`, `lobe admin …`, `lobe loadtest`, `lobe bench`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from lobe.billing import admin_cli
from lobe.billing.admin_cli import add_admin_commands, add_retention_command
from lobe.devtools.dev import DEV_PLAN, DevOptions, find_state_dir, run_dev
from lobe.devtools.loadtest import bench, command
from lobe.devtools.loadtest.upstream import add_shape_arguments, shape_from
from lobe.devtools.migrate import migrate


def _at_least_one(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} processes: at least 1 (leave a service out with --only)")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lobe", description="Lobe Platform developer tools.")
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser(
        "dev",
        help="run the whole suite locally",
        description="Run NATS, PostgreSQL and Redis (unless NATS_URL / DATABASE_URL / REDIS_URL are set) and "
        "every service as its own process, like production.",
    )
    dev.add_argument("--state-dir", type=Path, help="where embedded servers keep state (default .lobe/dev)")
    dev.add_argument("--ready-timeout", type=float, default=60.0, help="seconds to wait for readiness")
    dev.add_argument("--only", action="append", default=[], metavar="SERVICE", help="run only these services")
    dev.add_argument(
        "--workers", type=int, default=1, help="chat-worker processes (the first on its standard port)"
    )
    dev.add_argument(
        "--gateways", type=int, default=1, help="gateway processes (the first on its standard port)"
    )
    dev.add_argument("--plan", default=DEV_PLAN, help="the dev user's billing plan (enterprise: no limits)")
    dev.add_argument(
        "--fake-upstream",
        action="store_true",
        help="run a fast fake OpenAI upstream and route the model `bench` to it (benchmarks)",
    )
    add_shape_arguments(dev, prefix="upstream-")

    db = commands.add_parser("db", help="database tasks")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("migrate", help="apply billing migrations to $DATABASE_URL")
    add_retention_command(db_commands)
    add_admin_commands(commands)
    command.add_loadtest_command(commands)
    bench.add_bench_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "dev":
        options = DevOptions(
            state_dir=args.state_dir or find_state_dir(),
            ready_timeout_s=args.ready_timeout,
            only=frozenset(args.only),
            instances={"chat-worker": args.workers, "gateway": args.gateways},
            plan=args.plan,
            upstream=shape_from(args, prefix="upstream-") if args.fake_upstream else None,
        )
        return asyncio.run(run_dev(options))
    if args.command == "db" and args.db_command == "migrate":
        dsn = os.environ.get("DATABASE_URL")
        if not dsn:
            print("lobe db migrate: DATABASE_URL is not set", file=sys.stderr)
            return 2
        asyncio.run(migrate(dsn, sys.stdout))
        return 0
    if args.command == "loadtest":
        return command.run(args)
    if args.command == "bench":
        return bench.run(args)
    if args.command == "admin" or (args.command == "db" and args.db_command == "retention"):
        return admin_cli.run(args)
    raise AssertionError(f"unhandled command {args}")


if __name__ == "__main__":
    sys.exit(main())
