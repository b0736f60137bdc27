"""Process lifecycle: connect, declare streams, consume, serve ops, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from faststream.nats import NatsBroker

from lobe.metrics.aggregation import UsageMetrics
from lobe.metrics.lag import ConsumerLag
from lobe.metrics.router import build_router, usage_consumer
from lobe.metrics.settings import SERVICE_NAME, MetricsSettings
from lobe.shared.bus import broker_options, ensure_consumer, ensure_streams
from lobe.shared.events.streams import USAGE
from lobe.shared.lifecycle import announce
from lobe.shared.ops import start_ops_server
from lobe.shared.process import stop_requested

log = logging.getLogger(__name__)

READY_PING_TIMEOUT_S = 0.5


@dataclass
class Running:
    broker: NatsBroker
    metrics: UsageMetrics
    ops: web.AppRunner = field(init=False)
    draining: bool = False

    async def ready(self) -> bool:
        return not self.draining and await self.broker.ping(READY_PING_TIMEOUT_S)


def build_broker(settings: MetricsSettings, metrics: UsageMetrics) -> NatsBroker:
    broker = NatsBroker(
        **broker_options(settings, SERVICE_NAME),
        logger=log,
        log_level=logging.DEBUG,  # a line per message belongs at debug, not in production logs
    )
    broker.include_router(build_router(metrics))
    return broker


@asynccontextmanager
async def running(settings: MetricsSettings, metrics: UsageMetrics | None = None) -> AsyncIterator[Running]:
    """The whole service, up until the block exits; then it drains NATS and stops the ops server."""
    metrics = metrics or UsageMetrics(
        max_models=settings.metrics_max_models, dedupe_window=settings.metrics_dedupe_window
    )
    broker = build_broker(settings, metrics)
    state = Running(broker=broker, metrics=metrics)
    polling: asyncio.Task[None] | None = None
    # Ops first, so liveness answers (and readiness says 503) while NATS is still coming up.
    state.ops = await start_ops_server(
        settings.ops_host, settings.ops_port, state.ready, registry=metrics.registry
    )
    try:
        await broker.connect()
        js = broker.connection.jetstream()
        await ensure_streams(js, replicas=settings.nats_stream_replicas)
        await ensure_consumer(js, USAGE.name, usage_consumer())
        await broker.start()
        await announce(broker.connection.jetstream(), SERVICE_NAME, "started")
        lag = ConsumerLag(metrics.registry)
        polling = asyncio.create_task(lag.run(broker.connection.jetstream(), settings.metrics_lag_interval_s))
        log.info("metrics consuming", extra={"ops_port": settings.ops_port})
        yield state
    finally:
        state.draining = True
        if polling is not None:
            polling.cancel()
        with contextlib.suppress(Exception):  # never connected: nothing to announce
            await announce(broker.connection.jetstream(), SERVICE_NAME, "stopped")
        try:
            await asyncio.wait_for(broker.stop(), settings.metrics_shutdown_grace_s)
        except TimeoutError:
            log.warning("nats drain timed out", extra={"grace_s": settings.metrics_shutdown_grace_s})
        await state.ops.cleanup()


async def serve(settings: MetricsSettings) -> None:
    """Run until SIGTERM or SIGINT."""
    stop = stop_requested()
    async with running(settings):
        await stop.wait()
        log.info("metrics stopping: draining")
