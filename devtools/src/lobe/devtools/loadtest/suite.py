"""The processes a benchmark measures: the fake upstream alone, or the whole suite under `lobe dev`.

Both run as children of this process on free loopback ports, with embedded NATS, PostgreSQL and
Redis in a temporary state directory (never a developer's `.lobe/dev`, never the standard ports),
logging at WARNING so that relaying logs costs nothing under load, and tracing exported only to
the endpoint the caller gives (`lobe bench --tracing`: lobe.devtools.loadtest.trace_sink).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from lobe.devtools.dev import GATEWAY_NATS_ENV, PORT_VARS
from lobe.devtools.loadtest.shape import Shape
from lobe.devtools.loadtest.upstream import shape_argv
from lobe.devtools.ports import free_port
from lobe.devtools.watched import WatchedProcess, environ_without_backends

READY = re.compile(r"^lobe dev ready in \S+: gateway (\S+)  api key (\S+)$")
NATS = re.compile(r"backends ready .*?nats (nats://\S+)")


def bench_environ() -> dict[str, str]:
    """This environment without backend URLs (embed fresh ones) and tracing settings (the bench's
    own or none), logs at WARNING."""
    base = {k: v for k, v in environ_without_backends().items() if not k.startswith("OTEL_")}
    return base | {"LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}


@dataclass(frozen=True)
class RunningSuite:
    gateway_urls: list[str]  # each `…/v1`
    api_key: str
    nats_url: str
    pid: int  # `lobe dev`: every process of the suite descends from it
    nats_credentials: tuple[str | None, str | None] = (None, None)  # the gateway's user, password


@contextlib.asynccontextmanager
async def lobe_dev(
    shape: Shape,
    *,
    workers: int = 1,
    gateways: int = 1,
    plan: str = "enterprise",
    trace_endpoint: str | None = None,
    ready_s: float = 120,
) -> AsyncIterator[RunningSuite]:
    with tempfile.TemporaryDirectory(prefix="lobe-bench-") as state:
        argv = [sys.executable, "-m", "lobe.devtools.cli", "dev", "--state-dir", state, "--plan", plan]
        argv += ["--workers", str(workers), "--gateways", str(gateways), "--fake-upstream"]
        argv += shape_argv(shape, prefix="upstream-")
        env = bench_environ() | dict.fromkeys(PORT_VARS, "0")  # free ones, picked by lobe dev
        if trace_endpoint is not None:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = trace_endpoint
        dev = WatchedProcess(argv, env, owned=True)
        try:
            ready = await asyncio.to_thread(dev.wait_for_line, READY, ready_s)
            nats = next(m.group(1) for line in dev.err if (m := NATS.search(line)))
            urls = [f"{url}/v1" for url in ready.group(1).split(",")]
            yield RunningSuite(urls, ready.group(2), nats, dev.proc.pid, gateway_credentials(Path(state)))
        finally:
            await asyncio.to_thread(_stop, dev)


def gateway_credentials(state_dir: Path) -> tuple[str | None, str | None]:
    """The gateway's NATS user and password that `lobe dev --fake-upstream` wrote (none: no users)."""
    path = state_dir / GATEWAY_NATS_ENV
    if not path.exists():
        return None, None
    env = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return env.get("NATS_USER"), env.get("NATS_PASSWORD")


def _stop(dev: WatchedProcess, grace_s: float = 30) -> None:
    if dev.proc.poll() is None:
        dev.proc.send_signal(signal.SIGTERM)
        try:
            dev.proc.wait(grace_s)
        except Exception:
            dev.kill()


@contextlib.asynccontextmanager
async def upstream_alone(shape: Shape, ready_s: float = 30) -> AsyncIterator[tuple[str, int]]:
    """The fake upstream as its own process: (base URL `…/v1`, pid), for the direct measurement."""
    port = free_port()
    argv = [sys.executable, "-m", "lobe.devtools.loadtest.upstream", "--port", str(port), *shape_argv(shape)]
    proc = WatchedProcess(argv, dict(os.environ), owned=True)
    try:
        await wait_http(f"http://127.0.0.1:{port}/health", proc, ready_s)
        yield f"http://127.0.0.1:{port}/v1", proc.proc.pid
    finally:
        await asyncio.to_thread(_stop, proc, 10)


async def wait_http(url: str, proc: WatchedProcess, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as http:
        while time.monotonic() < deadline:
            if proc.proc.poll() is not None:
                raise RuntimeError(f"{url} exited with {proc.proc.returncode}:\n{''.join(proc.err)}")
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{url} not ready in {limit_s}s")
