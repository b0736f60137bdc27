"""Create and drop databases on a PostgreSQL server from synchronous code (pytest fixtures).

asyncpg needs an event loop, and the test's own loop is not running while fixtures are set up,
so the admin connection lives on a private loop in a daemon thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
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
    """Database life cycle on one server through a maintenance database (admin_dsn).

    CREATE DATABASE costs ~0.1-0.25 s, so `take()` keeps a few databases per template created
    ahead on the admin thread while tests run: a test usually gets one that is already there.
    """

    def __init__(self, admin_dsn: str, *, ahead: int = 2, file_copy: bool = False) -> None:
        self.admin_dsn = admin_dsn
        self.ahead = ahead
        # FILE_COPY is the faster strategy on a server with wal_level=minimal (our embedded one).
        self._strategy = " STRATEGY FILE_COPY" if file_copy else ""
        self._loop = _LoopThread()
        self._conn: asyncpg.Connection | None = None
        self._lock: asyncio.Lock | None = None
        self._ahead: dict[str | None, deque[tuple[str, Future[None]]]] = {}
        self._pending: list[Future[None]] = []

    def take(self, prefix: str, template: str | None = None) -> str:
        """The name of a new empty database (or a clone of template); the caller drops it."""
        queue = self._ahead.setdefault(template, deque())
        name, done = queue.popleft() if queue else self._submit(prefix, template)
        done.result(TIMEOUT_S)
        while len(queue) < self.ahead:
            queue.append(self._submit(prefix, template))
        return name

    def _submit(self, prefix: str, template: str | None) -> tuple[str, Future[None]]:
        name = random_name(prefix)
        return name, asyncio.run_coroutine_threadsafe(
            self._execute(self._create_sql(name, template)), self._loop.loop
        )

    def discard_ahead(self, template: str | None = None) -> None:
        """Drop the databases created ahead from template (before the template itself is dropped)."""
        for name, done in self._ahead.pop(template, ()):
            with contextlib.suppress(Exception):
                done.result(TIMEOUT_S)
            self.drop(name)

    def dsn(self, database: str) -> str:
        return with_database(self.admin_dsn, database)

    def execute(self, sql: str) -> None:
        self._loop.run(self._execute(sql))

    def create(self, name: str, template: str | None = None) -> str:
        self.execute(self._create_sql(name, template))
        return self.dsn(name)

    def _create_sql(self, name: str, template: str | None) -> str:
        sql = f"CREATE DATABASE {_quote(name)}"
        if template is not None:
            sql += f" TEMPLATE {_quote(template)}"
        return sql + self._strategy

    def drop(self, name: str) -> None:
        self.execute(self._drop_sql(name))

    def drop_later(self, name: str) -> None:
        """Drop in the background: a test's teardown need not wait for it (wait_idle() does)."""
        self._pending.append(
            asyncio.run_coroutine_threadsafe(self._execute(self._drop_sql(name)), self._loop.loop)
        )

    def wait_idle(self) -> None:
        """Wait for background drops; raises the first one's error."""
        pending, self._pending = self._pending, []
        for done in pending:
            done.result(TIMEOUT_S)

    @staticmethod
    def _drop_sql(name: str) -> str:
        # FORCE: a test that leaked a pool must not make the next test's teardown fail.
        return f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)"

    def run(self, setup: Callable[[str], Awaitable[T]], database: str) -> T:
        """Run setup(dsn) (e.g. migrations) against database on the admin thread's loop."""

        async def call() -> T:
            return await setup(self.dsn(database))

        return self._loop.run(call())

    def close(self) -> None:
        for template in list(self._ahead):
            self.discard_ahead(template)
        with contextlib.suppress(Exception):
            self.wait_idle()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                self._loop.run(conn.close(timeout=5), timeout=10)
            except Exception:  # the server may already be gone; nothing left to close then
                conn.terminate()
        self._loop.close()

    async def _execute(self, sql: str) -> None:
        # One admin connection runs one statement at a time; background creates queue up here.
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            await self._execute_once(sql)

    async def _execute_once(self, sql: str) -> None:
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
