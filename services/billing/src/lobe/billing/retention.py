"""Ledger retention: drop whole month partitions, prune the dedupe keys nobody can repeat.

Dropping a partition is instant and leaves no bloat, which is why the ledger is partitioned by
month. Rollups and period totals are kept: reports for old periods still work after their rows
are gone. Request ids are only needed while a duplicate can still arrive, i.e. while the USAGE
stream can still redeliver it (its max age) plus a margin.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import asyncpg

from lobe.shared.events.streams import USAGE

PARTITION_NAME = re.compile(r"^usage_ledger_y(\d{4})m(\d{2})$")
DEDUPE_MARGIN_S = 24 * 3600


@dataclass(frozen=True)
class RetentionReport:
    dropped_partitions: list[str]
    pruned_request_ids: int


def oldest_month_kept(today: date, keep_months: int) -> date:
    """First day of the oldest month kept: the current month and `keep_months` before it."""
    months = today.year * 12 + today.month - 1 - keep_months
    return date(months // 12, months % 12 + 1, 1)


async def apply_retention(conn: asyncpg.Connection, keep_months: int, today: date) -> RetentionReport:
    cutoff = oldest_month_kept(today, keep_months)
    rows = await conn.fetch(
        """SELECT c.relname FROM pg_inherits i
           JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
           WHERE p.relname = 'usage_ledger'"""
    )
    dropped = []
    for name in sorted(r["relname"] for r in rows):
        match = PARTITION_NAME.match(name)
        if match and date(int(match[1]), int(match[2]), 1) < cutoff:
            await conn.execute(f'DROP TABLE "{name}"')  # name matched the pattern above
            dropped.append(name)
    horizon_s = USAGE.max_age_s + DEDUPE_MARGIN_S
    pruned = await conn.fetchval(
        """WITH gone AS (DELETE FROM usage_request_ids WHERE seen_at < now() - make_interval(secs => $1)
           RETURNING 1) SELECT count(*) FROM gone""",
        float(horizon_s),
    )
    return RetentionReport(dropped, int(pruned))
