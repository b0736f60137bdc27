"""A service process's life, the same for every service (guarantee 6).

Start-up enters each part on one AsyncExitStack in the order the parts need each other: the ops
server, NATS, then the handlers; then the service is ready. On SIGTERM or SIGINT readiness goes
off first (the load balancer stops sending), then the stack unwinds in reverse: the handlers stop
taking work and finish, or fail explicitly, what they hold within the service's grace; NATS
drains; the ops server goes last, so the drain stays visible to probes and Prometheus. A start-up
that fails unwinds whatever it had entered the same way.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any, Protocol, TypeVar

import uvloop
from aiohttp import web
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from prometheus_client import REGISTRY, CollectorRegistry

from lobe.shared.lifecycle import announce
from lobe.shared.logs import setup_logging
from lobe.shared.ops import Readiness, ReadinessCheck, bound_port, start_ops_server
from lobe.shared.settings import OpsSettings, ServiceSettings
from lobe.shared.telemetry import setup_tracing

log = logging.getLogger(__name__)
T = TypeVar("T")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Broker(Protocol):
    """A service's bus (lobe.shared.bus.Bus), as far as the runtime drives it."""

    async def connect(self) -> Any: ...
    async def stop(self) -> None: ...
    @property
    def connection(self) -> NATS: ...


class ServiceRuntime:
    """One service's parts on one AsyncExitStack, and its readiness. `start` functions take it."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.draining = asyncio.Event()  # set on SIGTERM, before anything stops
        self.ops_port = 0
        self._ready = False
        self._announce_on: JetStreamContext | None = None
        self._stack = AsyncExitStack()

    async def enter(self, context: AbstractAsyncContextManager[T]) -> T:
        return await self._stack.enter_async_context(context)

    def on_stop(self, callback: Callable[..., Awaitable[object]], *args: Any) -> None:
        """Run `callback(*args)` on the way out, before anything entered earlier stops."""
        self._stack.push_async_callback(callback, *args)

    async def serve_ops(
        self,
        settings: OpsSettings,
        check: ReadinessCheck,
        extra: web.Application | None = None,
        registry: CollectorRegistry = REGISTRY,
    ) -> web.AppRunner:
        """Health, readiness (503 until ready and from SIGTERM on, else `check`) and /metrics, plus
        `extra`'s routes, until the stack unwinds to here."""

        async def ready() -> Readiness:
            if self.draining.is_set():
                return Readiness(False, ("draining: shutting down",))
            if not self._ready:
                return Readiness(False, ("starting",))
            answer = await check()
            return answer if isinstance(answer, Readiness) else Readiness(answer)

        runner = await start_ops_server(settings.ops_host, settings.ops_port, ready, extra, registry)
        self.on_stop(runner.cleanup)
        self.ops_port = bound_port(runner)
        return runner

    async def connect(self, broker: Broker, drain_s: float | None = None) -> NATS:
        """Connect `broker`; on the way out stop its subscribers and drain its connection (in-flight
        handlers finish, publishes flush), waiting at most `drain_s`."""
        await broker.connect()
        self.on_stop(_drain, broker, drain_s)
        return broker.connection

    def announce(self, js: JetStreamContext) -> None:
        """`service.started` once ready; `service.stopped` when the stack unwinds to here."""
        self._announce_on = js

        async def stopped() -> None:
            if self._ready:
                await announce(js, self.service, "stopped")

        self.on_stop(stopped)

    async def _mark_ready(self) -> None:
        self._ready = True
        if self._announce_on is not None:
            await announce(self._announce_on, self.service, "started")
        log.info("%s ready", self.service, extra={"ops_port": self.ops_port})


async def _drain(broker: Broker, drain_s: float | None) -> None:
    try:
        await asyncio.wait_for(broker.stop(), drain_s)
    except TimeoutError:
        log.warning("nats drain timed out", extra={"grace_s": drain_s})
    except Exception as exc:  # a connection already gone cannot drain; there is nothing left to flush
        log.warning("nats drain failed: %r", exc)


Start = Callable[[ServiceRuntime], Awaitable[object]]


@asynccontextmanager
async def started(service: str, start: Start) -> AsyncIterator[ServiceRuntime]:
    """The service `start` builds, ready, until the block exits; then stopped in order. In-process
    harnesses (tests, benches) use it as the process does."""
    runtime = ServiceRuntime(service)
    async with runtime._stack:
        await start(runtime)
        await runtime._mark_ready()
        try:
            yield runtime
        finally:
            runtime.draining.set()
            log.info("%s draining: readiness off", service)


def stop_requested() -> asyncio.Event:
    """An event set on SIGTERM or SIGINT. Install it first, so a signal during start-up is kept."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    return stop


@contextmanager
def signals_stop() -> Iterator[asyncio.Event]:
    """An event set on SIGTERM or SIGINT while the block runs."""
    stop = stop_requested()
    try:
        yield stop
    finally:
        for sig in STOP_SIGNALS:
            asyncio.get_running_loop().remove_signal_handler(sig)


async def serve(service: str, start: Start) -> None:
    """Start, serve until SIGTERM or SIGINT, stop in order. Signals are caught from before start-up,
    so one that arrives meanwhile stops the service as soon as it is up."""
    with signals_stop() as stop:
        async with started(service, start):
            await stop.wait()


def run_on_service_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on the event loop every service runs on, as benches must to measure what runs.

    uvloop: its transports make the socket writes that dominate every hop's profile (one per SSE
    chunk, one per NATS flush) markedly cheaper (docs/performance.md)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def run_service(service: str, settings: ServiceSettings, start: Start) -> None:
    """The process: JSON logs and traces set up, the service served until SIGTERM or SIGINT, buffered
    spans exported before the process exits, whatever ended it."""
    setup_logging(settings, service)
    provider = setup_tracing(settings, service)
    try:
        run_on_service_loop(serve(service, start))
    finally:
        provider.shutdown()
