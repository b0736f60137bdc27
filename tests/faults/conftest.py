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
    nc = await nats.connect(nats_url.split(","))
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


def bus_service(supervisor: Supervisor, name: str, module: str, env: dict[str, str]) -> Service:
    """A service with no public port: ready when its ops listener says so."""
    ops_port = free_port()
    full_env = {**QUIET, "OPS_HOST": "127.0.0.1", "OPS_PORT": str(ops_port), **env}
    argv = [sys.executable, "-m", module]
    ready_url = f"http://127.0.0.1:{ops_port}/health/ready"
    return Service(supervisor, ServiceSpec(name, argv, full_env, ready_url=ready_url))


def billing_service(supervisor: Supervisor, nats_url: str, database_url: str, **env: str) -> Service:
    env = {"NATS_URL": nats_url, "DATABASE_URL": database_url, "BILLING_FETCH_TIMEOUT_S": "0.2", **env}
    return bus_service(supervisor, "billing", "lobe.billing", env)


def worker_service(supervisor: Supervisor, name: str, nats_url: str, models_file: str, **env: str) -> Service:
    env = {"NATS_URL": nats_url, "MODELS_FILE": models_file, "WORKER_ID": name, **env}
    return bus_service(supervisor, name, "lobe.chat_worker", env)


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
    request_id: str | None = None  # the gateway's X-Request-Id: the ledger's key
    total_tokens: int | None = None  # the usage the client was told (JSON, or SSE's usage chunk)


async def chat(http: aiohttp.ClientSession, url: str, api_key: str, payload: dict[str, Any]) -> Outcome:
    """POST a chat completion; an error's status, code and message (an SSE error event counts, with
    its code), or 200 and whether it completed."""
    async with http.post(
        f"{url}/v1/chat/completions", json=payload, headers={"Authorization": f"Bearer {api_key}"}
    ) as response:
        text = await response.text()
        request_id = response.headers.get("X-Request-Id")
    if response.status != 200:
        error = json.loads(text)["error"]
        return Outcome(response.status, error.get("code"), error.get("message", ""), request_id)
    if not payload["stream"]:
        body = json.loads(text)
        complete = bool(body["choices"][0]["finish_reason"])
        tokens = body.get("usage", {}).get("total_tokens")
        return Outcome(200, None if complete else "incomplete", text[-200:], request_id, tokens)
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    errors = [e["error"] for e in events if "error" in e]
    if errors:
        return Outcome(200, errors[0].get("code"), errors[0].get("message", ""), request_id)
    # A complete answer: SSE ends with [DONE] after a finish reason.
    usage = next((e["usage"]["total_tokens"] for e in events if e.get("usage")), None)
    complete = text.rstrip().endswith("data: [DONE]")
    return Outcome(200, None if complete else "incomplete", text[-200:], request_id, usage)
