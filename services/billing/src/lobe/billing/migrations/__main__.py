"""`python -m lobe.billing.migrations`: apply pending migrations to $DATABASE_URL (Helm hook Job)."""

from __future__ import annotations

import asyncio
import os
import sys

from lobe.billing.migrations import apply_migrations


def main() -> int:
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        print("migrations: DATABASE_URL is not set", file=sys.stderr)
        return 2
    applied = asyncio.run(apply_migrations(dsn))
    for name in applied:
        print(f"applied migration {name}")
    if not applied:
        print("database schema up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
