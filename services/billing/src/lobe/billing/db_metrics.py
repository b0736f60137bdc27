"""`lobe_database_query_duration_seconds{operation,table}`: every statement billing runs, timed.

Measured per connection (the pool's `init` adds asyncpg's query logger), so no module that talks
to PostgreSQL changes to be measured. asyncpg's logger does not see COPY: the ledger's COPY is
timed with `timed_copy`. Label values are bounded: `operation` is the statement's verb (select,
insert, update, delete, copy, transaction for BEGIN/COMMIT/ROLLBACK, else other); `table` is the
table it writes, or else the first it reads, when that is one of billing's own tables (from its
migrations), `none` when it names no table, else `other`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import asyncpg
from asyncpg.connection import LoggedQuery
from prometheus_client import Histogram

from lobe.billing.migrations import load_migrations

QUERY_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1)  # the seed's
OTHER = "other"
NO_TABLE = "none"

QUERY_DURATION = Histogram(
    "lobe_database_query_duration_seconds",
    "Billing's PostgreSQL statements, by SQL verb and table.",
    ["operation", "table"],
    buckets=QUERY_BUCKETS,
)

_CREATE_TABLE = re.compile(r"CREATE TABLE (?:IF NOT EXISTS )?([a-z_][a-z0-9_]*)\s*\(", re.I)
_COMMENT = re.compile(r"--[^\n]*")
_WRITE = re.compile(r"\b(insert\s+into|update|delete\s+from)\s+([a-z_][a-z0-9_]*)")
_READ = re.compile(r"\b(?:from|join)\s+([a-z_][a-z0-9_]*)")
_TRANSACTION = ("begin", "commit", "rollback", "savepoint", "release", "start transaction")


@lru_cache(maxsize=1)
def billing_tables() -> frozenset[str]:
    return frozenset(
        name.lower() for migration in load_migrations() for name in _CREATE_TABLE.findall(migration.sql)
    )


def _table(name: str | None) -> str:
    if name is None:
        return NO_TABLE
    return name if name in billing_tables() else OTHER


@lru_cache(maxsize=512)
def classify(query: str) -> tuple[str, str]:
    """(operation, table) of a statement."""
    sql = " ".join(_COMMENT.sub(" ", query).lower().split())
    if sql.startswith(_TRANSACTION):
        return "transaction", NO_TABLE
    write = _WRITE.search(sql)
    if write is not None:
        return write.group(1).split()[0], _table(write.group(2))
    if sql.startswith(("select", "with", "values", "table")):
        read = _READ.search(sql)
        return "select", _table(read.group(1) if read else None)
    return OTHER, NO_TABLE


def observe(record: LoggedQuery) -> None:
    QUERY_DURATION.labels(*classify(record.query)).observe(record.elapsed)


async def instrument(conn: asyncpg.Connection) -> None:
    """The pool's `init`: time every statement this connection runs."""
    conn.add_query_logger(observe)


@contextmanager
def timed_copy(table: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        QUERY_DURATION.labels("copy", _table(table)).observe(time.perf_counter() - started)
