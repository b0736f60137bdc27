"""`lobe admin …` and `lobe db retention`: billing's operator tasks against $DATABASE_URL.

`lobe admin` also needs $NATS_URL: every change is announced there (lobe.billing.admin), so the
gateways drop what they cached about the key or the user at once. The tasks live in billing, not in
the developer tools, so that the billing image carries them as `lobe-admin` (the same commands):
an operator runs them in a billing pod, which already has the database, NATS and its credentials.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
from nats.errors import Error as NatsError

from lobe.billing.admin import admin_session
from lobe.billing.errors import BillingError
from lobe.billing.plans import Override
from lobe.billing.retention import apply_retention
from lobe.shared.config_file import ConfigError


def add_admin_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_tasks(
        commands.add_parser(
            "admin", help="users, API keys, plans, limits and usage resets (billing database)"
        )
    )


def add_tasks(parser: argparse.ArgumentParser) -> None:
    tasks = parser.add_subparsers(dest="admin_command", required=True)
    create = tasks.add_parser(
        "create-user", help="create a user (an existing one is never changed: set-plan, set-role)"
    )
    create.add_argument("user_id")
    create.add_argument("--plan", help="default: the plans file's default plan")
    create.add_argument("--email")
    issue = tasks.add_parser("issue-key", help="issue an API key; the key is printed once")
    issue.add_argument("user_id")
    issue.add_argument("--name")
    revoke = tasks.add_parser("revoke-key", help="revoke an API key by its id")
    revoke.add_argument("key_id")
    plan = tasks.add_parser("set-plan", help="move a user to another plan")
    plan.add_argument("user_id")
    plan.add_argument("plan")
    role = tasks.add_parser("set-role", help="make a user an admin (or a user again)")
    role.add_argument("user_id")
    role.add_argument("role", choices=["user", "admin"])
    limits = tasks.add_parser("set-limits", help="per-user overrides of the plan's limits (omit = plan's)")
    limits.add_argument("user_id")
    limits.add_argument("--tokens", type=int)
    limits.add_argument("--cost-usd", type=Decimal)
    limits.add_argument("--requests", type=int)
    limits.add_argument("--rate-tier")
    reset = tasks.add_parser(
        "reset-usage", help="close a user's current usage period and open a new one (limits count from now)"
    )
    reset.add_argument("user_id")


def add_retention_command(db_commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    retention = db_commands.add_parser("retention", help="drop ledger months older than the kept window")
    retention.add_argument(
        "--keep-months", type=int, required=True, help="months kept before the current one"
    )


async def _admin(args: argparse.Namespace, dsn: str, nats_url: str) -> str:
    async with admin_session(dsn, nats_url, os.environ.get("PLANS_FILE")) as admin:
        match args.admin_command:
            case "create-user":
                created = await admin.create_user(args.user_id, args.plan, args.email)
                if not created.created:
                    return f"user {args.user_id} exists, on plan {created.plan}: unchanged"
                return f"user {args.user_id} on plan {created.plan}"
            case "issue-key":
                issued = await admin.issue_key(args.user_id, args.name)
                return f"key id {issued.id}\napi key {issued.key}  (shown once: store it now)"
            case "revoke-key":
                user = await admin.revoke_key(args.key_id)
                return f"revoked {args.key_id} of user {user}"
            case "set-plan":
                await admin.set_plan(args.user_id, args.plan)
                return f"user {args.user_id} on plan {args.plan}"
            case "set-role":
                await admin.set_role(args.user_id, args.role)
                return f"user {args.user_id} is now {args.role}"
            case "set-limits":
                override = Override(args.tokens, args.cost_usd, args.requests, args.rate_tier)
                await admin.set_limits(args.user_id, override)
                return f"limits of {args.user_id}: {override}"
            case "reset-usage":
                done = await admin.reset_usage(args.user_id)
                held = f"; {done.moved_holds} running requests' holds moved to it" if done.moved_holds else ""
                return (
                    f"usage of {args.user_id}: period {done.closed} closed, {done.opened} "
                    f"started {done.at.isoformat()}{held}"
                )
    raise AssertionError(args.admin_command)


async def _retention(args: argparse.Namespace, dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        report = await apply_retention(conn, args.keep_months, datetime.now(UTC).date())
    finally:
        await conn.close()
    lines = [f"dropped {name}" for name in report.dropped_partitions] or ["no partition old enough to drop"]
    lines.append(f"pruned {report.pruned_request_ids} request ids past the dedupe horizon")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    needed = ("DATABASE_URL", "NATS_URL") if args.command == "admin" else ("DATABASE_URL",)
    missing = [name for name in needed if not os.environ.get(name)]
    if missing:
        why = " (admin changes are announced to the gateways on NATS)" if "NATS_URL" in missing else ""
        print(f"lobe {args.command}: {' and '.join(missing)} not set{why}", file=sys.stderr)
        return 2
    dsn = os.environ["DATABASE_URL"]
    task = _admin(args, dsn, os.environ["NATS_URL"]) if args.command == "admin" else _retention(args, dsn)
    try:
        print(asyncio.run(task))
    except (BillingError, ConfigError) as exc:
        print(f"lobe {args.command}: {exc}", file=sys.stderr)
        return 1
    except (OSError, NatsError) as exc:
        print(f"lobe {args.command}: cannot connect: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """`lobe-admin TASK …`: `lobe admin TASK …` where the `lobe` developer command is not installed."""
    parser = argparse.ArgumentParser(
        prog="lobe-admin", description="users, API keys, plans and limits (billing database)"
    )
    add_tasks(parser)
    parser.set_defaults(command="admin")
    return run(parser.parse_args(argv))
