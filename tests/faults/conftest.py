"""Fault tests: services run as real processes so they can be SIGKILLed, backends are stopped.

Shared here: a migrated database, billing / gateway processes (through the devtools
Supervisor), an in-process chat worker, a chat call, and bounded waits. The usage workload and
its expected ledger are in workload.py.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import nats
import pytest

from lobe.chat_worker.deployments import Deployment, ModelCatalog, RoutedModel
from lobe.chat_worker.service import ChatWorker
from lobe.chat_worker.settings import WorkerSettings
from lobe.devtools.children import signal_group
from lobe.devtools.ports import free_port
from lobe.devtools.supervisor import Child, ServiceSpec, Supervisor
from lobe.shared.events.streams import BILLING_CONSUMER, USAGE

QUIET = {"LOG_LEVEL": "WARNING", "LOG_FORMAT": "text"}


# -- database ---------------------------------------------------------------------------------------
async def fetchval(dsn: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def ledger_count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM usage_ledger"))


async def consumer_backlog(nats_url: str) -> int:
    """Messages billing's durable consumer has not acked yet (pending plus in flight)."""
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().consumer_info(USAGE.name, BILLING_CONSUMER)
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)
    finally:
        await nc.close()


async def wait_until(
    check: Callable[[], Awaitable[bool]], within: float, what: str, poll: float = 0.05
) -> float:
    """Poll `check` until it holds; returns the seconds it took, fails naming `what` on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        try:
            if await check():
                return time.monotonic() - started
        except (OSError, asyncpg.PostgresError):  # a backend that is down or restarting
            pass
        await asyncio.sleep(poll)
    raise AssertionError(f"{what}: not reached within {within:g} s")


# -- processes --------------------------------------------------------------------------------------
@dataclass
class Service:
    """One service process, restartable with the same configuration (same ports, same env)."""

    supervisor: Supervisor
    spec: ServiceSpec
    child: Child | None = None

    async def start(self, within: float = 30.0) -> Child:
        self.child = await self.supervisor.start(self.spec)
        await self.supervisor.wait_ready([self.child], within)
        return self.child

    @property
    def pid(self) -> int:
        assert self.child is not None
        return self.child.proc.pid

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.proc.returncode is None

    async def kill(self) -> None:
        """SIGKILL the process group, as a crash or the OOM killer would."""
        assert self.child is not None
        signal_group(self.child.proc.pid, signal.SIGKILL)
        await asyncio.wait_for(self.child.proc.wait(), 10)


@pytest.fixture
async def worker(nats_url: str) -> AsyncIterator[ChatWorker]:
    """An in-process chat worker serving the mock model (its own process is not needed here)."""
    catalog = ModelCatalog(
        models=[RoutedModel(name="mock", deployments=[Deployment(name="mock", provider="mock")])]
    )
    chat_worker = ChatWorker(WorkerSettings(nats_url=nats_url, ops_port=0), catalog)
    await chat_worker.start()
    yield chat_worker
    await chat_worker.stop()


@pytest.fixture
async def supervisor() -> AsyncIterator[Supervisor]:
    sup = Supervisor(color=False)
    yield sup
    await sup.shutdown(grace=10)


def billing_service(supervisor: Supervisor, nats_url: str, database_url: str, **env: str) -> Service:
    ops_port = free_port()
    full_env = {
        **QUIET,
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "OPS_HOST": "127.0.0.1",
        "OPS_PORT": str(ops_port),
        "BILLING_FETCH_TIMEOUT_S": "0.2",
        **env,
    }
    spec = ServiceSpec(
        "billing",
        [sys.executable, "-m", "lobe.billing"],
        full_env,
        ready_url=f"http://127.0.0.1:{ops_port}/health/ready",
    )
    return Service(supervisor, spec)


def gateway_service(supervisor: Supervisor, name: str, nats_url: str, api_keys: str, **env: str) -> Service:
    port = free_port()
    full_env = {
        **QUIET,
        "NATS_URL": nats_url,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "OPS_PORT": "0",
        "GATEWAY_API_KEYS": api_keys,
        # Not what these tests are about, and the default REDIS_URL may be a server shared by others.
        "RATE_LIMITS_ENABLED": "false",
        "CACHE_ENABLED": "false",
        **env,
    }
    spec = ServiceSpec(
        name, [sys.executable, "-m", "lobe.gateway"], full_env, ready_url=f"http://127.0.0.1:{port}/api/ready"
    )
    return Service(supervisor, spec)


def base_url(service: Service) -> str:
    return f"http://127.0.0.1:{service.spec.env['GATEWAY_PORT']}"


async def is_ready(service: Service) -> bool:
    assert service.spec.ready_url is not None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        try:
            async with http.get(service.spec.ready_url) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False


@dataclass
class Outcome:
    status: int
    code: str | None
    message: str


async def chat(http: aiohttp.ClientSession, url: str, api_key: str, payload: dict[str, Any]) -> Outcome:
    """POST a chat completion; an error's status, code and message, or 200 and whether it completed."""
    async with http.post(
        f"{url}/v1/chat/completions", json=payload, headers={"Authorization": f"Bearer {api_key}"}
    ) as response:
        text = await response.text()
    if response.status != 200:
        error = json.loads(text)["error"]
        return Outcome(response.status, error.get("code"), error.get("message", ""))
    # A complete answer: SSE ends with [DONE], JSON carries a finish reason.
    complete = text.rstrip().endswith("data: [DONE]") if payload["stream"] else "finish_reason" in text
    return Outcome(200, None if complete else "incomplete", text[-200:])
