"""NATS, PostgreSQL and Redis for `lobe dev`: the environment's, else embedded ones under .lobe/dev."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import asyncpg

from lobe.devtools.servers import BusUsers, EmbeddedServer, NatsServer, PostgresServer, RedisServer

DEV_DATABASE = "lobe"
S = TypeVar("S", bound=EmbeddedServer)


class Backends:
    """Embedded servers keep their state under state_dir and listen on their own free ports.

    The embedded NATS has a user per service with the catalog's permissions, as production does
    (new passwords at each start); NATS from the environment is used as the environment says."""

    def __init__(self, state_dir: Path, environ: Mapping[str, str] | None = None) -> None:
        self.state_dir = state_dir
        self.environ = dict(os.environ if environ is None else environ)
        self.servers: list[EmbeddedServer] = []
        self.urls: dict[str, str] = {}
        self.bus_users: BusUsers | None = None

    def nats_env(self, principal: str) -> dict[str, str]:
        """NATS_USER and NATS_PASSWORD of `principal` on the embedded NATS (none for an external one,
        or for a process that is no principal of the catalog)."""
        if self.bus_users is None or principal not in self.bus_users.passwords:
            return {}
        return self.bus_users.env(principal)

    async def start(self, limit_s: float = 60.0) -> dict[str, str]:
        """Start what the environment does not provide; returns NATS_URL, DATABASE_URL, REDIS_URL."""
        nats = self._embed("NATS_URL", self._secured_nats)
        pg = self._embed("DATABASE_URL", lambda: PostgresServer(self.state_dir / "pg"))
        redis = self._embed("REDIS_URL", lambda: RedisServer(self.state_dir / "redis"))
        await asyncio.gather(*(asyncio.to_thread(s.wait_ready, limit_s) for s in self.servers))
        if nats is not None:
            self.urls["NATS_URL"] = nats.url
        if pg is not None:
            self.urls["DATABASE_URL"] = pg.dsn(DEV_DATABASE)
            await create_database(pg.url, DEV_DATABASE)
        if redis is not None:
            self.urls["REDIS_URL"] = f"{redis.url}/0"
        return self.urls

    def _secured_nats(self) -> NatsServer:
        self.bus_users = BusUsers.generate()
        return NatsServer(self.state_dir / "nats", users=self.bus_users)

    def _embed(self, var: str, make: Callable[[], S]) -> S | None:
        """The environment's URL for var, else a new embedded server, spawned (not yet ready)."""
        if self.environ.get(var):
            self.urls[var] = self.environ[var]
            return None
        server = make()
        # Spawned from this (the main) thread: their parent-death signal is tied to it.
        server.spawn()
        self.servers.append(server)
        return server

    def describe(self) -> str:
        parts = []
        for var, url in self.urls.items():
            origin = "from environment" if self.environ.get(var) else "embedded"
            parts.append(f"{var.split('_')[0].lower()} {_redact(url)} ({origin})")
        return ", ".join(parts)

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.close()
        self.servers.clear()


async def create_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def _redact(url: str) -> str:
    """Hide a password in a URL before printing it."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    user = creds.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"
