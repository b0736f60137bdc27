"""`lobe admin …` and `lobe db retention`: billing's operator tasks against $DATABASE_URL."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg

from lobe.billing import admin
from lobe.billing.errors import NotFoundError
from lobe.billing.plans import Override
from lobe.billing.retention import apply_retention


def add_admin_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("admin", help="users, API keys, plans and limits (billing database)")
    tasks = parser.add_subparsers(dest="admin_command", required=True)
    create = tasks.add_parser("create-user", help="create a user (or update its plan)")
    create.add_argument("user_id")
    create.add_argument("--plan", default="free")
    create.add_argument("--email")
    issue = tasks.add_parser("issue-key", help="issue an API key; the key is printed once")
    issue.add_argument("user_id")
    issue.add_argument("--name")
    revoke = tasks.add_parser("revoke-key", help="revoke an API key by its id")
    revoke.add_argument("key_id")
    plan = tasks.add_parser("set-plan", help="move a user to another plan")
    plan.add_argument("user_id")
    plan.add_argument("plan")
    limits = tasks.add_parser("set-limits", help="per-user overrides of the plan's limits (omit = plan's)")
    limits.add_argument("user_id")
    limits.add_argument("--tokens", type=int)
    limits.add_argument("--cost-usd", type=Decimal)
    limits.add_argument("--requests", type=int)
    limits.add_argument("--rate-tier")


def add_retention_command(db_commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    retention = db_commands.add_parser("retention", help="drop ledger months older than the kept window")
    retention.add_argument(
        "--keep-months", type=int, required=True, help="months kept before the current one"
    )


async def _admin(args: argparse.Namespace, conn: asyncpg.Connection) -> str:
    match args.admin_command:
        case "create-user":
            await admin.create_user(conn, args.user_id, args.plan, args.email)
            return f"user {args.user_id} on plan {args.plan}"
        case "issue-key":
            issued = await admin.issue_key(conn, args.user_id, args.name)
            return f"key id {issued.id}\napi key {issued.key}  (shown once: store it now)"
        case "revoke-key":
            user = await admin.revoke_key(conn, args.key_id)
            return f"revoked {args.key_id} of user {user}"
        case "set-plan":
            await admin.set_plan(conn, args.user_id, args.plan)
            return f"user {args.user_id} on plan {args.plan}"
        case "set-limits":
            override = Override(args.tokens, args.cost_usd, args.requests, args.rate_tier)
            await admin.set_limits(conn, args.user_id, override)
            return f"limits of {args.user_id}: {override}"
    raise AssertionError(args.admin_command)


async def _retention(args: argparse.Namespace, conn: asyncpg.Connection) -> str:
    report = await apply_retention(conn, args.keep_months, datetime.now(UTC).date())
    lines = [f"dropped {name}" for name in report.dropped_partitions] or ["no partition old enough to drop"]
    lines.append(f"pruned {report.pruned_request_ids} request ids past the dedupe horizon")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        print(f"lobe {args.command}: DATABASE_URL is not set", file=sys.stderr)
        return 2
    task = _admin if args.command == "admin" else _retention

    async def go() -> str:
        conn = await asyncpg.connect(dsn)
        try:
            return await task(args, conn)
        finally:
            await conn.close()

    try:
        print(asyncio.run(go()))
    except NotFoundError as exc:
        print(f"lobe {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0
