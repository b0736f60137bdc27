"""Billing migrations, imported lazily: devtools must not need the billing package to run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TextIO

ApplyMigrations = Callable[[str], Awaitable[list[str]]]


def load_apply_migrations() -> ApplyMigrations | None:
    """lobe.billing.migrations.apply_migrations, or None when billing is not installed yet."""
    try:
        from lobe.billing.migrations import apply_migrations
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == "lobe" or exc.name.startswith("lobe.billing")):
            return None
        raise
    return apply_migrations


async def migrate(dsn: str, out: TextIO, prefix: str = "") -> list[str] | None:
    """Apply pending migrations, printing each version; None when there is nothing to apply them with."""
    apply = load_apply_migrations()
    if apply is None:
        out.write(f"{prefix}warning: lobe.billing.migrations not installed; migrations skipped\n")
        return None
    applied = await apply(dsn)
    for name in applied:
        out.write(f"{prefix}applied migration {name}\n")
    if not applied:
        out.write(f"{prefix}database schema up to date\n")
    out.flush()
    return applied
