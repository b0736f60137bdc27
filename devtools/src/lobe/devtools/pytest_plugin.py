"""pytest harness: real NATS, PostgreSQL and Redis for every test that asks for them.

- `nats_server` / `nats_url`: a fresh nats-server with JetStream per test (kill/restart it freely).
- `nc`: a connection of the test's own to `nats_url` (what a test publishes, asks and watches with).
- `secured_nats`: the same with a NATS user per service, each allowed only what the event catalog
  gives it (`secured_nats.users`), plus an unrestricted `harness` user for the test's own connections.
- `pg_server`: the session's PostgreSQL ($DATABASE_URL's server, else one embedded per session);
  `database_url`: a fresh empty database on it per test, dropped afterwards;
  `make_database` / `pg_templates`: databases cloned from a template built once per session;
  `make_migrated_database`: one cloned from a template a service's migrations built (billing's
  `billing_db` fixture, in lobe.billing.testing, is one).
- `private_pg_server`: a PostgreSQL of the test's own, for tests that stop or kill it.
- `redis_url`: $REDIS_URL's server, else one embedded per session; a flushed db number per test.
- `make_oidc_provider`: a real OpenID provider (npm oidc-provider under node) for given clients.
- `upstream`: a fake provider on loopback replaying the providers' wire formats byte for byte
  (lobe.devtools.fake_upstream; the transcripts are in lobe.devtools.provider_fixtures);
  `make_upstream(default, port)`: more of them, each with its default reply.
- `spans`: the spans finished during the test (an in-memory exporter on the process's tracer
  provider, which OpenTelemetry lets a process install only once).

Every test that uses one of them gets the `integration` marker. This plugin is loaded in every
package's tests, so it imports no service: the fixtures that start services are in
lobe.devtools.suite.fixtures, loaded by the repository's conftest.py.
"""

from __future__ import annotations

import functools
import itertools
import os
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import nats
import pytest
from nats.aio.client import Client as NATS
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lobe.devtools.fake_upstream import FakeUpstream, Reply, upstreams
from lobe.devtools.pgadmin import DatabaseAdmin, random_name
from lobe.devtools.servers import BusUsers, NatsServer, PostgresServer, RedisServer
from lobe.devtools.servers.oidc import OidcProviderServer
from lobe.devtools.servers.redis import DATABASES

INTEGRATION_FIXTURES = frozenset(
    {
        "nats_server",
        "nats_url",
        "nc",
        "secured_nats",
        "pg_server",
        "database_url",
        "make_database",
        "pg_templates",
        "make_migrated_database",
        "private_pg_server",
        "redis_server",
        "redis_url",
        "make_oidc_provider",
    }
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: talks to real NATS / PostgreSQL / Redis")
    # A SIGTERMed pytest would die without teardown or atexit; turned into an interrupt, both run.
    in_main = threading.current_thread() is threading.main_thread()
    if in_main and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.hookimpl(tryfirst=True)  # before -m deselection sees the items
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


# -- NATS -------------------------------------------------------------------------------------------
@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    with NatsServer() as server:
        yield server


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    return nats_server.url


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NATS]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


HARNESS_USER = "harness"


@pytest.fixture
def secured_nats() -> Iterator[NatsServer]:
    with NatsServer(users=BusUsers.generate(superuser=HARNESS_USER)) as server:
        yield server


# -- PostgreSQL -------------------------------------------------------------------------------------
@dataclass
class PgTemplates:
    """Template databases built once per session: clone one per test instead of re-migrating."""

    admin: DatabaseAdmin
    _built: dict[str, str] = field(default_factory=dict)

    def get(self, key: str, setup: Callable[[str], Awaitable[Any]]) -> str:
        """The template for `key`, built on first use by `await setup(dsn)`; returns its name."""
        if key not in self._built:
            name = random_name(f"lobe_tpl_{key}_")
            self.admin.create(name)
            try:
                self.admin.run(setup, name)
            except BaseException:
                self.admin.drop(name)
                raise
            self._built[key] = name
        return self._built[key]

    def drop_all(self) -> None:
        self.admin.wait_idle()  # clones of a template must be gone before it can be dropped
        for name in self._built.values():
            self.admin.discard_ahead(name)
            self.admin.drop(name)
        self._built.clear()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[DatabaseAdmin]:
    """Admin handle on the session's PostgreSQL server (create/drop databases, dsn())."""
    external = os.environ.get("DATABASE_URL")
    if external:
        admin = DatabaseAdmin(external)
        try:
            yield admin
        finally:
            admin.close()
        return
    with PostgresServer(durable=False) as server:
        admin = DatabaseAdmin(server.url, file_copy=True)
        try:
            yield admin
        finally:
            admin.close()


@pytest.fixture(scope="session")
def pg_templates(pg_server: DatabaseAdmin) -> Iterator[PgTemplates]:
    templates = PgTemplates(pg_server)
    yield templates
    templates.drop_all()


@pytest.fixture
def make_database(pg_server: DatabaseAdmin) -> Iterator[Callable[..., str]]:
    """make_database(template=None) -> DSN of a new database, dropped after the test."""
    created: list[str] = []

    def make(template: str | None = None) -> str:
        name = pg_server.take("lobe_test_", template)
        created.append(name)
        return pg_server.dsn(name)

    yield make
    for name in created:
        pg_server.drop_later(name)


@pytest.fixture
def database_url(make_database: Callable[..., str]) -> str:
    return make_database()


Migrate = Callable[[str], Awaitable[Any]]


@pytest.fixture
def make_migrated_database(
    pg_templates: PgTemplates, make_database: Callable[..., str]
) -> Callable[[str, Migrate], str]:
    """make_migrated_database(key, migrate) -> DSN of a fresh database cloned from the session's `key`
    template, which `await migrate(dsn)` builds on first use."""

    def make(key: str, migrate: Migrate) -> str:
        return make_database(template=pg_templates.get(key, migrate))

    return make


@pytest.fixture
def private_pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own (~0.5 s): stop, kill and restart it at will."""
    with PostgresServer(durable=False) as server:
        yield server


# -- Redis ------------------------------------------------------------------------------------------
class RedisDatabases:
    """Hands each test its own db number, flushed first, on one server."""

    def __init__(self, base_url: str, numbers: Iterator[int]) -> None:
        self.base_url = base_url
        self._numbers = numbers

    def next_url(self) -> str:
        import redis

        parts = urlsplit(self.base_url)
        url = urlunsplit(parts._replace(path=f"/{next(self._numbers)}"))
        client = redis.Redis.from_url(url)
        try:
            client.flushdb()
        finally:
            client.close()
        return url


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisDatabases]:
    external = os.environ.get("REDIS_URL")
    if external:
        # A server we do not own has the default 16 databases; 0 is left to whoever owns it.
        yield RedisDatabases(external, itertools.cycle(range(1, 16)))
        return
    with RedisServer() as server:
        yield RedisDatabases(server.url, itertools.cycle(range(1, DATABASES)))


@pytest.fixture
def redis_url(redis_server: RedisDatabases) -> str:
    return redis_server.next_url()


# -- traces -----------------------------------------------------------------------------------------
@functools.cache
def _span_exporter() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:
        raise RuntimeError("another tracer provider was installed first; spans cannot be captured")
    return exporter


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The spans finished while the test runs (`spans.get_finished_spans()`)."""
    exporter = _span_exporter()
    exporter.clear()
    yield exporter
    exporter.clear()


# -- OpenID provider --------------------------------------------------------------------------------
@pytest.fixture
def make_oidc_provider() -> Iterator[Callable[[list[dict[str, Any]]], OidcProviderServer]]:
    """make_oidc_provider([{"client_id", "client_secret", "redirect_uris"}]) -> a running provider."""
    started: list[OidcProviderServer] = []

    def make(clients: list[dict[str, Any]]) -> OidcProviderServer:
        server = OidcProviderServer(clients).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.close()


# -- fake providers ---------------------------------------------------------------------------------
MakeUpstream = Callable[..., Awaitable[FakeUpstream]]


@pytest.fixture
async def make_upstream() -> AsyncIterator[MakeUpstream]:
    """make_upstream(default=None, port=0) -> a started fake provider, stopped after the test."""
    async with AsyncExitStack() as stack:

        async def make(default: Reply | None = None, port: int = 0) -> FakeUpstream:
            return (await stack.enter_async_context(upstreams(default, port=port)))[0]

        yield make


@pytest.fixture
async def upstream(make_upstream: MakeUpstream) -> FakeUpstream:
    """A fake provider on loopback (see lobe.devtools.fake_upstream)."""
    return await make_upstream()
