"""Fault tests: services run as real processes so they can be SIGKILLed, backends are stopped.

Shared here: billing / worker / gateway processes with this tree's settings (started through
lobe.devtools.suite; the in-process `worker` is the suite's fixture), a chat call, and bounded waits. The usage workload and
its expected ledger are in workload.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import nats

from lobe.devtools.suite import ServiceProcess
from lobe.devtools.suite.fixtures import MakeProcess
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
# Each a lobe.devtools.suite ServiceProcess from the `make_process` fixture (stopped after the test):
# restartable with the same ports and environment, SIGKILLed by `kill()`.


def billing_service(
    make_process: MakeProcess, nats_url: str, database_url: str, **env: str
) -> ServiceProcess:
    env = {"NATS_URL": nats_url, "DATABASE_URL": database_url, "BILLING_FETCH_TIMEOUT_S": "0.2", **env}
    return make_process("billing", env={**QUIET, **env})


def worker_service(
    make_process: MakeProcess, name: str, nats_url: str, models_file: str, **env: str
) -> ServiceProcess:
    env = {"NATS_URL": nats_url, "MODELS_FILE": models_file, "WORKER_ID": name, **env}
    return make_process("chat-worker", env={**QUIET, **env}, name=name)


def gateway_service(
    make_process: MakeProcess, name: str, nats_url: str, api_keys: str, **env: str
) -> ServiceProcess:
    full_env = {
        **QUIET,
        "NATS_URL": nats_url,
        "GATEWAY_API_KEYS": api_keys,
        # Not what these tests are about, and the default REDIS_URL may be a server shared by others.
        "RATE_LIMITS_ENABLED": "false",
        "CACHE_ENABLED": "false",
        **env,
    }
    return make_process("gateway", env=full_env, name=name)


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
