"""Retention drops whole old months and keeps what reports and dedupe still need."""

from __future__ import annotations

from datetime import date

import asyncpg

from lobe.billing.retention import apply_retention, oldest_month_kept


def test_oldest_month_kept_counts_back_across_years() -> None:
    assert oldest_month_kept(date(2026, 2, 17), keep_months=3) == date(2025, 11, 1)
    assert oldest_month_kept(date(2026, 11, 30), keep_months=0) == date(2026, 11, 1)


async def test_retention_drops_old_partitions_and_prunes_old_request_ids(billing_db: str) -> None:
    conn = await asyncpg.connect(billing_db)
    try:
        for month in (date(2026, 1, 15), date(2026, 8, 15), date(2026, 11, 2)):
            await conn.execute("SELECT lobe_ensure_usage_partition($1::date::timestamptz)", month)
        await conn.execute(
            """INSERT INTO usage_request_ids (request_id, occurred_at, seen_at) VALUES
               ('old', now() - interval '30 days', now() - interval '30 days'),
               ('recent', now(), now())"""
        )
        report = await apply_retention(conn, keep_months=3, today=date(2026, 11, 26))
        remaining = {
            r["relname"]
            for r in await conn.fetch(
                """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                   JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'usage_ledger'"""
            )
        }
        ids = {r["request_id"] for r in await conn.fetch("SELECT request_id FROM usage_request_ids")}
    finally:
        await conn.close()
    assert report.dropped_partitions == ["usage_ledger_y2026m01"]
    assert {"usage_ledger_y2026m08", "usage_ledger_y2026m11"} <= remaining
    assert "usage_ledger_y2026m01" not in remaining
    assert report.pruned_request_ids == 1
    assert ids == {"recent"}
