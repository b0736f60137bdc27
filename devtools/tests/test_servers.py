"""Embedded servers: real processes that start, answer, stop, die on SIGKILL and come back."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import asyncpg
import nats
import pytest
import redis

from lobe.devtools.ports import port_is_open
from lobe.devtools.servers import (
    NatsServer,
    NodeExporter,
    PostgresServer,
    PrometheusServer,
    PromQLError,
    RedisServer,
    ServerStartError,
)


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


async def test_nats_kill_refuses_connections_and_restart_keeps_jetstream_data() -> None:
    with NatsServer() as server:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await js.add_stream(name="T", subjects=["t.>"])
        await js.publish("t.one", b"kept")
        await nc.close()

        pid = server.pid
        assert pid is not None
        server.kill()
        assert _refused(server.port)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)

        server.start()
        nc = await nats.connect(server.url)
        msg = await nc.jetstream().get_msg("T", 1)
        assert msg.data == b"kept"
        await nc.close()


async def test_postgres_stop_then_start_serves_the_same_data_on_the_same_port() -> None:
    with PostgresServer(durable=False) as server:
        conn = await asyncpg.connect(server.url)
        await conn.execute("CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)")
        await conn.close()
        port = server.port

        server.stop()
        assert _refused(port)
        server.start()

        assert server.port == port
        conn = await asyncpg.connect(server.url)
        assert await conn.fetchval("SELECT v FROM kept") == 7
        await conn.close()


async def test_postgres_in_a_private_home_survives_a_re_chmod_of_it_and_leaves_no_data_behind(
    tmp_path: Path,
) -> None:
    """pytest re-chmods its basetemp to 0700 at each session start; as root, postgres runs as the
    `pgserver` user, which then could not enter a home under it (a concurrent session's `lobe dev`
    died of that). Its data lives where that user can reach it, and goes at close()."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with PostgresServer(private / "pg", durable=False) as server:
        holder = server.data_dir.parent  # as root a temp dir of its own, else the home
        conn = await asyncpg.connect(server.url)
        await conn.execute("CREATE TABLE kept (v int); INSERT INTO kept VALUES (3)")
        await conn.close()
        server.stop()
        private.chmod(0o700)  # what the next pytest session does to its basetemp
        server.start()
        conn = await asyncpg.connect(server.url)
        assert await conn.fetchval("SELECT v FROM kept") == 3
        await conn.close()
    assert holder == private / "pg" or not holder.exists()  # a temp dir of its own went at close()
    assert private.stat().st_mode & 0o777 == 0o700  # nobody widened it


async def test_postgres_kill_takes_down_every_backend_and_recovers_committed_rows() -> None:
    with PostgresServer() as server:
        conn = await asyncpg.connect(server.url)
        await conn.execute("CREATE TABLE kept (v int); INSERT INTO kept VALUES (1)")
        pid = server.pid
        assert pid is not None
        server.kill()
        assert _refused(server.port)
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)  # no backend of the killed server is left
        conn.terminate()

        server.start()
        conn = await asyncpg.connect(server.url)
        assert await conn.fetchval("SELECT v FROM kept") == 1
        await conn.close()


def test_redis_serves_set_get_and_kill_refuses_connections() -> None:
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        assert client.get("k") == b"v"
        client.close()
        server.kill()
        assert _refused(server.port)


def test_a_server_that_cannot_bind_reports_its_log() -> None:
    with RedisServer() as first:
        clash = RedisServer(port=first.port)
        with pytest.raises(ServerStartError, match="redis did not start") as info:
            clash.start(timeout=5)
        assert "already in use" in str(info.value)
        clash.close()


def test_close_removes_the_temporary_home_and_the_process() -> None:
    server = NatsServer().start()
    home, port = server.home, server.port
    server.close()
    assert not home.exists()
    assert not port_is_open(port)


def test_prometheus_scrapes_node_exporter_and_answers_promql() -> None:
    with NodeExporter() as node, PrometheusServer({"node": [node.target]}, interval_s=0.2) as prometheus:
        deadline = time.monotonic() + 30
        while not prometheus.query('up{job="node"} == 1'):
            assert time.monotonic() < deadline, "prometheus never scraped node-exporter"
            time.sleep(0.1)
        (memory,) = prometheus.query(
            "(1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes) * 100"
        )
        assert 0 < float(memory["value"][1]) < 100
        assert "node_cpu_seconds_total" in prometheus.series_names()
        with pytest.raises(PromQLError, match="bad_data"):
            prometheus.query("rate(")
