"""`lobe db migrate` and `lobe dev`'s migration step: billing's migrations, with progress."""

from __future__ import annotations

from typing import TextIO

from lobe.billing.migrations import apply_migrations


async def migrate(dsn: str, out: TextIO, prefix: str = "") -> list[str]:
    """Apply pending migrations, printing each version as it lands."""
    applied = await apply_migrations(dsn)
    for name in applied:
        out.write(f"{prefix}applied migration {name}\n")
    if not applied:
        out.write(f"{prefix}database schema up to date\n")
    out.flush()
    return applied
