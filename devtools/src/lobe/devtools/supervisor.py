"""Run a set of services as child processes: prefixed logs, readiness, death watch, ordered shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

import aiohttp

from lobe.devtools.children import group_alive, registry, signal_group, spawn_kwargs

TAIL_LINES = 20
COLORS = (36, 33, 35, 32, 34, 31)  # cyan, yellow, magenta, green, blue, red


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    argv: Sequence[str]
    env: dict[str, str] = field(default_factory=dict)
    ready_url: str | None = None  # GET returns 200 once the service is ready; None: ready when spawned


class ServiceFailed(RuntimeError):
    """A service exited or never became ready; names it and carries its last log lines."""

    def __init__(self, name: str, reason: str, tail: Sequence[str], exit_code: int | None = None) -> None:
        lines = "\n".join(f"  {line}" for line in tail) or "  (no output)"
        super().__init__(f"{name} {reason}; its last log lines:\n{lines}")
        self.name = name
        self.reason = reason
        self.tail = list(tail)
        self.exit_code = exit_code  # None: it was still running (not ready in time)


@dataclass
class Child:
    spec: ServiceSpec
    proc: asyncio.subprocess.Process
    tail: deque[str]
    pump: asyncio.Task[None]

    @property
    def name(self) -> str:
        return self.spec.name


class Supervisor:
    """Owns its children: each in its own process group, all killed on shutdown or owner exit."""

    def __init__(self, out: TextIO | None = None, *, color: bool | None = None, width: int = 12) -> None:
        self.out = out or sys.stdout
        self.color = self.out.isatty() if color is None else color
        self.width = width
        self.children: list[Child] = []

    # -- starting -------------------------------------------------------------------------------
    async def start(self, spec: ServiceSpec) -> Child:
        proc = await asyncio.create_subprocess_exec(
            *spec.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **spec.env},
            **spawn_kwargs(),
        )
        registry.add(id(proc), lambda: _kill_group(proc.pid))
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        child = Child(spec, proc, tail, asyncio.create_task(self._pump(spec.name, proc, tail)))
        self.children.append(child)
        return child

    def _prefix(self, name: str) -> str:
        label = f"{name:<{self.width}} |"
        if not self.color:
            return label + " "
        colour = COLORS[sum(map(ord, name)) % len(COLORS)]
        return f"\x1b[{colour}m{label}\x1b[0m "

    async def _pump(self, name: str, proc: asyncio.subprocess.Process, tail: deque[str]) -> None:
        assert proc.stdout is not None
        prefix = self._prefix(name)
        while True:
            raw = await proc.stdout.readline()
            if not raw:
                return
            line = raw.decode(errors="replace").rstrip("\r\n")
            tail.append(line)
            self.out.write(f"{prefix}{line}\n")
            self.out.flush()

    # -- readiness and death --------------------------------------------------------------------
    async def wait_ready(
        self,
        children: Sequence[Child],
        limit_s: float,
        on_ready: Callable[[Child, float], None] | None = None,
    ) -> None:
        """Poll every child's ready_url until all answer 200; raise ServiceFailed on death or timeout."""
        started = time.monotonic()
        pending = list(children)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as http:
            while pending:
                for child in list(pending):
                    if child.proc.returncode is not None:
                        await self._drain(child)
                        raise ServiceFailed(
                            child.name,
                            f"exited with code {child.proc.returncode} during start-up",
                            child.tail,
                            child.proc.returncode,
                        )
                    if await _answers(http, child.spec.ready_url):
                        pending.remove(child)
                        if on_ready is not None:
                            on_ready(child, time.monotonic() - started)
                if pending and time.monotonic() - started > limit_s:
                    child = pending[0]
                    raise ServiceFailed(child.name, f"was not ready after {limit_s:g}s", child.tail)
                if pending:
                    await asyncio.sleep(0.1)

    async def first_exit(self) -> Child:
        """The first child to exit (waits as long as they all run)."""
        waits = {asyncio.create_task(_exited(c.proc)): c for c in self.children}
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        child = waits[next(iter(done))]
        await self._drain(child)
        return child

    async def _drain(self, child: Child) -> None:
        # The last lines (often the traceback) are still in the pipe when the exit is noticed.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(child.pump), 2)

    # -- stopping -------------------------------------------------------------------------------
    async def shutdown(self, grace: float = 10.0) -> None:
        """SIGTERM in reverse start order, each given the rest of `grace`; then SIGKILL every group."""
        deadline = time.monotonic() + grace
        for child in reversed(self.children):
            if child.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_exited(child.proc), max(0.0, deadline - time.monotonic()))
        for child in self.children:
            # Stragglers and anything a service forked into its group.
            if child.proc.returncode is None or group_alive(child.proc.pid):
                signal_group(child.proc.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_exited(child.proc), 5)
            await self._drain(child)
            registry.discard(id(child.proc))


async def _answers(http: aiohttp.ClientSession, url: str | None) -> bool:
    if url is None:
        return True
    try:
        async with http.get(url) as resp:
            return resp.status == 200
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False


async def _exited(proc: asyncio.subprocess.Process) -> int:
    """Wait for the process itself to exit.

    Process.wait() also waits for its pipes to close, which never happens while a grandchild
    still holds stdout; returncode is set as soon as the child is reaped.
    """
    while proc.returncode is None:  # noqa: ASYNC110 - asyncio offers no exit-only notification
        await asyncio.sleep(0.02)
    return proc.returncode


def _kill_group(pid: int) -> None:
    signal_group(pid, signal.SIGKILL)
