import asyncio

from lobe.billing.migrations import apply_migrations, load_migrations

from .support import fetchval


async def test_migrations_apply_once_then_report_nothing_pending(database_url: str) -> None:
    first = await apply_migrations(database_url)
    second = await apply_migrations(database_url)
    assert first == [m.name for m in load_migrations()]
    assert second == []


async def test_concurrent_runners_apply_each_migration_exactly_once(database_url: str) -> None:
    results = await asyncio.gather(*(apply_migrations(database_url) for _ in range(5)))
    applied = [name for r in results for name in r]
    assert sorted(applied) == sorted(m.name for m in load_migrations())
    rows = await fetchval(database_url, "SELECT count(*) FROM schema_migrations")
    assert rows == len(load_migrations())


async def test_ledger_partition_is_created_per_month_on_demand(database_url: str) -> None:
    await apply_migrations(database_url)
    name = await fetchval(database_url, "SELECT lobe_ensure_usage_partition('2031-02-28T23:59:59Z')")
    again = await fetchval(database_url, "SELECT lobe_ensure_usage_partition('2031-02-01T00:00:00Z')")
    assert name == again == "usage_ledger_y2031m02"
