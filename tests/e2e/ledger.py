"""Waiting for requests' rows in billing's ledger (billing ingests usage from JetStream in batches)."""

from __future__ import annotations

import asyncio
import time

import asyncpg


async def ledger_rows(dsn: str, request_ids: list[str], timeout_s: float = 10.0) -> list[asyncpg.Record]:
    """The ledger rows of these requests (every column), oldest first, once all have arrived."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            rows = await conn.fetch(
                "SELECT * FROM usage_ledger WHERE request_id = ANY($1::text[]) ORDER BY occurred_at",
                request_ids,
            )
            if len(rows) >= len(request_ids):
                return rows
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    raise AssertionError(f"requests {request_ids} never all reached the ledger")


async def ledger_row(dsn: str, request_id: str) -> asyncpg.Record:
    [row] = await ledger_rows(dsn, [request_id])
    return row
