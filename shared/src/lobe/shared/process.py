"""A service process's life: logging and tracing up, serve until SIGTERM or SIGINT, spans flushed."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import uvloop

from lobe.shared.logs import setup_logging
from lobe.shared.settings import ServiceSettings
from lobe.shared.telemetry import setup_tracing


def stop_requested() -> asyncio.Event:
    """An event set on SIGTERM or SIGINT. Install it first, so a signal during start-up is kept."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


T = TypeVar("T")


def run_on_service_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on the event loop every service runs on, as benches must to measure what runs.

    uvloop: its transports make the socket writes that dominate every hop's profile (one per SSE
    chunk, one per NATS flush) markedly cheaper (docs/performance.md)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def run_service(
    service: str, settings: ServiceSettings, serve: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    """Run `serve()` to completion with JSON logs and traces set up; buffered spans are exported
    before the process exits, whatever ended it."""
    setup_logging(settings, service)
    provider = setup_tracing(settings, service)
    try:
        run_on_service_loop(serve())
    finally:
        provider.shutdown()
