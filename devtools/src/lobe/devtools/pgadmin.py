"""Create and drop databases on a PostgreSQL server from synchronous code (pytest fixtures).

asyncpg needs an event loop, and the test's own loop is not running while fixtures are set up,
so the admin connection lives on a private loop in a daemon thread.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

T = TypeVar("T")
TIMEOUT_S = 60.0


def with_database(dsn: str, database: str) -> str:
    """The same server, user and options, another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


def random_name(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(6)}"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="lobe-pgadmin", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = TIMEOUT_S) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


class DatabaseAdmin:
    """Database life cycle on one server through a maintenance database (admin_dsn)."""

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn
        self._loop = _LoopThread()
        self._conn: asyncpg.Connection | None = None

    def dsn(self, database: str) -> str:
        return with_database(self.admin_dsn, database)

    def execute(self, sql: str) -> None:
        self._loop.run(self._execute(sql))

    def create(self, name: str, template: str | None = None) -> str:
        sql = f"CREATE DATABASE {_quote(name)}"
        if template is not None:
            sql += f" TEMPLATE {_quote(template)}"
        self.execute(sql)
        return self.dsn(name)

    def drop(self, name: str) -> None:
        # FORCE: a test that leaked a pool must not make the next test's teardown fail.
        self.execute(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)")

    def run(self, setup: Callable[[str], Awaitable[T]], database: str) -> T:
        """Run setup(dsn) (e.g. migrations) against database on the admin thread's loop."""

        async def call() -> T:
            return await setup(self.dsn(database))

        return self._loop.run(call())

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                self._loop.run(conn.close(timeout=5), timeout=10)
            except Exception:  # the server may already be gone; nothing left to close then
                conn.terminate()
        self._loop.close()

    async def _execute(self, sql: str) -> None:
        for attempt in range(2):
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self.admin_dsn, timeout=10)
            try:
                await self._conn.execute(sql)
                return
            except (asyncpg.ConnectionDoesNotExistError, ConnectionError):
                # The server restarted under us (fault tests do that): reconnect once.
                self._conn = None
                if attempt:
                    raise
