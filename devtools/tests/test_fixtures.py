"""The harness fixtures give each test a working server of its own (or an isolated slice of one)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable

import asyncpg
import nats
import pytest
import redis

from lobe.devtools.pgadmin import DatabaseAdmin
from lobe.devtools.servers import NatsServer, PostgresServer

# Shared between the two ordered tests below to prove each test sees a different database/db number.
_seen: dict[str, str] = {}


async def test_nats_url_serves_jetstream(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(name="HARNESS", subjects=["harness.>"])
    ack = await js.publish("harness.one", b"x")
    assert ack.stream == "HARNESS"
    assert ack.seq == 1
    await nc.close()


async def test_each_test_gets_a_fresh_nats_server_without_old_streams(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    names = [info.config.name async for info in _streams(nc.jetstream())]
    await nc.close()
    assert "HARNESS" not in names


async def _streams(js: nats.js.JetStreamContext):  # type: ignore[no-untyped-def]
    for info in await js.streams_info():
        yield info


async def test_nats_server_kill_then_restart_serves_the_same_url(nats_server: NatsServer) -> None:
    url = nats_server.url
    nats_server.kill()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", nats_server.port), timeout=1)
    nats_server.start()
    assert nats_server.url == url
    nc = await nats.connect(url)
    assert nc.is_connected
    await nc.close()


async def test_database_url_first_test_creates_a_table(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    await conn.execute("CREATE TABLE only_here (v int)")
    _seen["database"] = database_url
    await conn.close()


async def test_database_url_second_test_does_not_see_the_first_tests_table(database_url: str) -> None:
    assert _seen.get("database") not in (None, database_url)
    conn = await asyncpg.connect(database_url)
    exists = await conn.fetchval("SELECT to_regclass('only_here') IS NOT NULL")
    await conn.close()
    assert exists is False


async def test_previous_tests_databases_were_dropped(pg_server: DatabaseAdmin) -> None:
    pg_server.wait_idle()
    conn = await asyncpg.connect(pg_server.admin_dsn)
    names = {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
    await conn.close()
    first = _seen["database"].rsplit("/", 1)[1]
    assert first not in names


async def _migrate(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE ledger (id int primary key); INSERT INTO ledger VALUES (1)")
    await conn.close()


async def test_make_database_clones_a_session_template(
    pg_templates, make_database: Callable[..., str]
) -> None:  # type: ignore[no-untyped-def]
    template = pg_templates.get("ledger", _migrate)
    assert pg_templates.get("ledger", _migrate) == template  # built once
    first, second = make_database(template=template), make_database(template=template)
    assert first != second
    for dsn in (first, second):
        conn = await asyncpg.connect(dsn)
        assert await conn.fetchval("SELECT count(*) FROM ledger") == 1
        await conn.close()


async def test_make_migrated_database_migrates_a_template_once_and_clones_it_per_call(
    make_migrated_database: Callable[[str, Callable[[str], Awaitable[None]]], str],
) -> None:
    migrated: list[str] = []

    async def migrate(dsn: str) -> None:
        migrated.append(dsn)
        await _migrate(dsn)

    first, second = make_migrated_database("counted", migrate), make_migrated_database("counted", migrate)
    assert len(migrated) == 1
    assert first != second
    for dsn in (first, second):
        conn = await asyncpg.connect(dsn)
        assert await conn.fetchval("SELECT count(*) FROM ledger") == 1
        await conn.close()


def test_the_harness_imports_no_service() -> None:
    # Every package's tests load the harness: importing a service here would make that service a
    # dependency of every package's tests. A fresh interpreter, since this one has them all loaded.
    probe = (
        "import sys, lobe.devtools.pytest_plugin; "
        "print(sorted(m for m in sys.modules if m.split('.')[:2] in SERVICES))"
    ).replace("SERVICES", repr([["lobe", s] for s in ("gateway", "chat_worker", "billing", "metrics")]))
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


async def test_private_pg_server_can_be_stopped_and_started(private_pg_server: PostgresServer) -> None:
    private_pg_server.stop()
    with pytest.raises(ConnectionRefusedError):
        await asyncpg.connect(private_pg_server.url, timeout=2)
    private_pg_server.start()
    conn = await asyncpg.connect(private_pg_server.url)
    assert await conn.fetchval("SELECT 1") == 1
    await conn.close()


def test_redis_url_first_test_writes_a_key(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set("only-here", "1")
    assert client.get("only-here") == b"1"
    client.close()
    _seen["redis"] = redis_url


def test_redis_url_second_test_gets_an_empty_db(redis_url: str) -> None:
    assert _seen.get("redis") not in (None, redis_url)
    client = redis.Redis.from_url(redis_url)
    assert client.dbsize() == 0
    client.close()


def test_fixture_users_are_marked_integration(request: pytest.FixtureRequest, redis_url: str) -> None:
    assert request.node.get_closest_marker("integration") is not None


def test_tests_without_servers_are_not_marked_integration(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("integration") is None
