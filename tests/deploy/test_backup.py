"""PostgreSQL backup and restore, as docs/deploy.md tells an operator to do them.

helm/billing/files/pg-backup.sh is the one script compose's postgres-backup service and the
billing chart's CronJob run. Here it dumps a real billing database holding ledger rows, and the
documented restore brings them back in a fresh PostgreSQL. pg_dump must be at least the server's
major version: the pgserver wheel's PostgreSQL 16 tools are put first on PATH, as the postgres:16
image has them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from lobe.billing.ledger import PartitionCache, price_event, write_batch
from lobe.billing.migrations import apply_migrations
from lobe.billing.plans import load_plans
from lobe.billing.prices import load_prices
from lobe.devtools.servers import PostgresServer
from lobe.devtools.servers.binaries import postgres_bin_dir
from lobe.shared.events.chat import TokenUsage
from lobe.shared.events.usage import UsageRecorded

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "helm" / "billing" / "files" / "pg-backup.sh"
REQUESTS = [f"req-backup-{i}" for i in range(25)]


def pg_backup(
    *args: str, database_url: str, backup_dir: Path, keep: int = 14
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{postgres_bin_dir()}:{os.environ['PATH']}",
        "DATABASE_URL": database_url,
        "BACKUP_DIR": str(backup_dir),
        "BACKUP_KEEP": str(keep),
    }
    return subprocess.run(["/bin/sh", SCRIPT, *args], env=env, capture_output=True, text=True, timeout=120)


async def write_ledger_rows(dsn: str) -> None:
    prices, plans = load_prices(None), load_plans(None)
    rows = [
        price_event(
            UsageRecorded(
                request_id=request_id,
                user_id="backup-user",
                provider="openai",
                deployment="openai",
                model="gpt-4o-mini",
                usage=TokenUsage(prompt_tokens=100 + i, completion_tokens=10 + i),
                status="ok",
                duration_ms=10.0,
                occurred_at=datetime.now(UTC),
            ),
            prices,
            plans,
        )
        for i, request_id in enumerate(REQUESTS)
    ]
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        await PartitionCache().ensure(pool, rows)
        async with pool.acquire() as conn, conn.transaction():
            assert len((await write_batch(conn, rows)).inserted) == len(REQUESTS)
    finally:
        await pool.close()


async def ledger(dsn: str) -> tuple[list[str], str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        ids = [
            r["request_id"]
            for r in await conn.fetch("SELECT request_id FROM usage_ledger ORDER BY request_id")
        ]
        cost = await conn.fetchval("SELECT sum(cost_usd)::text FROM usage_ledger")
        rollup = await conn.fetchval("SELECT requests FROM usage_rollups WHERE user_id = 'backup-user'")
    finally:
        await conn.close()
    return ids, cost, rollup


async def test_backup_restores_into_a_fresh_postgres_with_every_ledger_row(
    billing_db: str, private_pg_server: PostgresServer, tmp_path: Path
) -> None:
    await write_ledger_rows(billing_db)
    before = await ledger(billing_db)
    assert before[0] == sorted(REQUESTS)

    backup_dir = tmp_path / "backup"
    made = await asyncio.to_thread(pg_backup, "backup", database_url=billing_db, backup_dir=backup_dir)
    assert made.returncode == 0, made.stderr
    [dump] = list(backup_dir.glob("lobe-*.dump"))
    assert not list(backup_dir.glob("*.partial"))

    # docs/deploy.md, "Restore": an empty database on a fresh server, the script's restore, then
    # billing's migrations find nothing to do.
    fresh = private_pg_server
    target = fresh.dsn("lobe")
    psql = [postgres_bin_dir() / "psql", fresh.dsn("postgres"), "-c", "CREATE DATABASE lobe"]
    created = await asyncio.to_thread(subprocess.run, psql, capture_output=True, text=True)
    assert created.returncode == 0, created.stderr
    restored = await asyncio.to_thread(
        pg_backup, "restore", str(dump), database_url=target, backup_dir=backup_dir
    )
    assert restored.returncode == 0, restored.stderr
    assert await ledger(target) == before
    assert await apply_migrations(target) == []


async def test_backup_keeps_only_the_newest_dumps(billing_db: str, tmp_path: Path) -> None:
    backup_dir = tmp_path / "backup"
    backup_dir.mkdir()
    old = [backup_dir / f"lobe-2026010{day}T031700Z.dump" for day in range(1, 4)]
    for path in old:
        path.write_bytes(b"old")
    made = await asyncio.to_thread(
        pg_backup, "backup", database_url=billing_db, backup_dir=backup_dir, keep=2
    )
    assert made.returncode == 0, made.stderr
    kept = sorted(p.name for p in backup_dir.glob("lobe-*.dump"))
    assert len(kept) == 2
    assert kept[0] == old[-1].name  # the newest old one, then today's
    assert "removed" in made.stdout


def test_restore_refuses_a_missing_dump_and_the_script_an_unknown_command(tmp_path: Path) -> None:
    missing = pg_backup(
        "restore", str(tmp_path / "nope.dump"), database_url="postgresql://x/y", backup_dir=tmp_path
    )
    assert missing.returncode == 2
    assert "no dump at" in missing.stderr
    usage = pg_backup("frobnicate", database_url="postgresql://x/y", backup_dir=tmp_path)
    assert usage.returncode == 2
    assert "usage:" in usage.stderr
