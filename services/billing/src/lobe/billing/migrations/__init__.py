"""Versioned SQL migrations: `NNNN_name.sql` files in this package, applied in name order.

Each file runs in its own transaction together with its row in `schema_migrations`, so a crash
leaves either all of a migration or none of it. A session advisory lock makes concurrent runners
(several replicas, a Helm hook Job and `lobe dev`) wait for each other instead of racing.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from importlib import resources

import asyncpg

from lobe.billing.errors import MigrationError

log = logging.getLogger(__name__)

# Arbitrary but fixed: every runner of this schema must agree on it.
MIGRATION_LOCK_KEY = 0x10BE_B111


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    files = [f for f in resources.files(__package__).iterdir() if f.name.endswith(".sql")]
    return [
        Migration(f.name.removesuffix(".sql"), f.read_text()) for f in sorted(files, key=lambda f: f.name)
    ]


async def apply_migrations(dsn: str) -> list[str]:
    """Apply pending migrations in order; returns the names applied (empty when up to date)."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            return await _apply_locked(conn)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    finally:
        await conn.close()


async def _apply_locked(conn: asyncpg.Connection) -> list[str]:
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               name text PRIMARY KEY,
               checksum text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    done = {
        r["name"]: r["checksum"] for r in await conn.fetch("SELECT name, checksum FROM schema_migrations")
    }
    applied: list[str] = []
    for migration in load_migrations():
        if migration.name in done:
            # An edited migration that already ran would silently diverge from fresh databases.
            if done[migration.name] != migration.checksum:
                raise MigrationError(migration.name, "file changed after it was applied")
            continue
        try:
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
                    migration.name,
                    migration.checksum,
                )
        except asyncpg.PostgresError as exc:
            raise MigrationError(migration.name, str(exc)) from exc
        log.info("applied migration %s", migration.name)
        applied.append(migration.name)
    return applied
