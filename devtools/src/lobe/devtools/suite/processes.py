"""A service as its own process, launched exactly as `lobe dev` launches it (dev.SERVICES' specs):
for tests that signal, kill or restart a service, or start it with a bad configuration."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from lobe.devtools.children import signal_group
from lobe.devtools.dev import service_named
from lobe.devtools.ports import LOOPBACK, free_port
from lobe.devtools.suite.settings import as_env
from lobe.devtools.supervisor import Child, ServiceSpec, Supervisor

# What a service logs in a test: plain lines, nothing buffered (a killed process keeps its last words).
TEST_ENV = {"LOG_FORMAT": "text", "PYTHONUNBUFFERED": "1"}


class ServiceProcess:
    """One service process, restartable with the same configuration (ports, environment).

    `proc` is the running process (send it signals); `stop()` is SIGTERM then, after the grace,
    SIGKILL to its process group; `kill()` is SIGKILL at once, as a crash or the OOM killer."""

    def __init__(self, spec: ServiceSpec, port: int, ops_port: int, log: TextIO | None = None) -> None:
        self.spec = spec
        self.url = f"http://{LOOPBACK}:{port}"  # the gateway's API; any other service's ops listener
        self.ops_url = f"http://{LOOPBACK}:{ops_port}"
        self.supervisor = Supervisor(log, color=False)
        self.child: Child | None = None

    async def start(self, within: float = 30.0) -> ServiceProcess:
        """Start and wait until it is ready; ServiceFailed (with its last lines) if it exits first."""
        self.child = await self.supervisor.start(self.spec)
        await self.supervisor.wait_ready([self.child], within)
        return self

    @property
    def proc(self) -> asyncio.subprocess.Process:
        assert self.child is not None, "start() first"
        return self.child.proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.proc.returncode is None

    @property
    def tail(self) -> list[str]:
        """Its last log lines."""
        return list(self.child.tail) if self.child is not None else []

    async def ready(self) -> bool:
        """Whether its readiness probe answers 200 now."""
        assert self.spec.ready_url is not None
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            try:
                async with http.get(self.spec.ready_url) as response:
                    return response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

    async def wait(self, within: float = 10.0) -> int:
        """Its exit code, once it exits (its last lines read)."""
        code = await asyncio.wait_for(self.proc.wait(), within)
        assert self.child is not None
        await self.supervisor._drain(self.child)
        return code

    async def kill(self) -> None:
        """SIGKILL the process group."""
        signal_group(self.pid, signal.SIGKILL)
        await asyncio.wait_for(self.proc.wait(), 10)

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL whatever is left after `grace` (nothing, for a clean service)."""
        await self.supervisor.shutdown(grace)
        self.supervisor.children.clear()


def service_process(
    service: str,
    settings: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    name: str | None = None,
    log: Path | None = None,
) -> ServiceProcess:
    """`service` (gateway, chat-worker, billing, metrics) as a process, not yet started: `settings`
    by field name (as the in-process settings classes take them), `env` as raw variables; free
    ports unless GATEWAY_PORT / OPS_PORT say otherwise. `log`: its output to a file, not stdout."""
    variables = {**TEST_ENV, **as_env(settings or {}), **(env or {})}
    gateway = service == "gateway"
    port = int(variables.pop("GATEWAY_PORT" if gateway else "OPS_PORT", 0) or free_port())
    ops_port = int(variables.pop("OPS_PORT", 0) or free_port()) if gateway else port
    spec = service_named(service).spec(name or service, port, variables, ops_port)
    out = log.open("a", buffering=1) if log is not None else sys.stdout
    return ServiceProcess(spec, port, ops_port, out)
