"""A real stack for the limit tests: NATS, Redis and PostgreSQL as servers of their own; billing and a
chat worker as `lobe dev` runs them (each its own process, the database migrated); and gateway
processes that a test starts fresh when it needs them (a cold key cache and an empty Redis pool:
what a replica the autoscaler just started is).

Users and keys are made through billing's admin API, so each run gets a key no window has seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from lobe.devtools.pgadmin import DatabaseAdmin
from lobe.devtools.ports import free_port
from lobe.devtools.servers import NatsServer, RedisServer
from lobe.devtools.suite import ServiceProcess, service_process
from lobe.devtools.watched import WatchedProcess, environ_without_backends

from ..e2e.test_lobe_dev import LOBE

STARTED = re.compile(r"^lobe dev ready in ")


@dataclass
class Stack:
    nats_url: str
    redis_url: str
    billing: str  # billing's ops port: its admin API
    admin_token: str
    root: Path

    async def new_key(self, plan: str) -> str:
        """A new user on `plan` and a key of theirs: windows nobody has charged yet."""
        user = "u-" + secrets.token_hex(6)
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.post(f"{self.billing}/v1/admin/users", json={"id": user, "plan": plan}) as r:
                assert r.status == 201, await r.text()
            async with http.post(f"{self.billing}/v1/admin/users/{user}/keys", json={}) as r:
                assert r.status == 201, await r.text()
                return str((await r.json())["key"])

    def gateways(self, count: int = 1, **env: str) -> contextlib.AbstractAsyncContextManager[list[Gateway]]:
        """`count` fresh gateway processes on this stack."""
        return gateway_processes(count, {"NATS_URL": self.nats_url, "REDIS_URL": self.redis_url, **env})


@dataclass
class Gateway:
    url: str
    proc: asyncio.subprocess.Process


@contextlib.asynccontextmanager
async def gateway_processes(count: int, env: dict[str, str]) -> AsyncIterator[list[Gateway]]:
    """`count` gateway processes with `env` (NATS_URL, REDIS_URL, ...), each ready."""
    started: list[ServiceProcess] = []
    try:
        for _ in range(count):
            started.append(await service_process("gateway", env=env).start())
        yield [Gateway(gateway.url, gateway.proc) for gateway in started]
    finally:
        for gateway in started:
            await gateway.stop(30)


@contextlib.contextmanager
def running_stack(pg_server: DatabaseAdmin, root: Path) -> Iterator[Stack]:
    admin_token = "admin-" + secrets.token_hex(16)
    billing_port = free_port()
    database = pg_server.take("lobe_limits_")
    with NatsServer() as nats, RedisServer() as redis:
        env = {
            "NATS_URL": nats.url,
            "REDIS_URL": f"{redis.url}/0",
            "DATABASE_URL": pg_server.dsn(database),
            "BILLING_ADMIN_TOKEN": admin_token,
            "BILLING_OPS_PORT": str(billing_port),
        }
        # Billing and a worker only: the gateways are the tests' own, started when a test wants them.
        argv = [LOBE, "dev", "--state-dir", str(root / "dev"), "--only", "billing", "--only", "chat-worker"]
        dev = WatchedProcess(argv, environ_without_backends() | env | {"CHAT_WORKER_OPS_PORT": "0"})
        try:
            dev.wait_for_line(STARTED, 90)
            yield Stack(nats.url, f"{redis.url}/0", f"http://127.0.0.1:{billing_port}", admin_token, root)
        finally:
            if dev.proc.poll() is None:
                dev.proc.send_signal(signal.SIGTERM)
                try:
                    dev.proc.wait(30)
                finally:
                    dev.kill()
            pg_server.drop_later(database)
