"""The metrics service on the shared runtime (lobe.shared.process): ops first, then NATS, the
durable consumer and the lag poll; on SIGTERM the broker drains within the grace."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream.nats import NatsBroker

from lobe.metrics.aggregation import UsageMetrics
from lobe.metrics.lag import ConsumerLag
from lobe.metrics.router import build_router, usage_consumer
from lobe.metrics.settings import SERVICE_NAME, MetricsSettings
from lobe.shared.bus import broker_options, ensure_consumer, ensure_streams
from lobe.shared.events.streams import USAGE
from lobe.shared.process import ServiceRuntime, started

log = logging.getLogger(__name__)

READY_PING_TIMEOUT_S = 0.5


def build_broker(settings: MetricsSettings, metrics: UsageMetrics) -> NatsBroker:
    broker = NatsBroker(
        **broker_options(settings, SERVICE_NAME),
        logger=log,
        log_level=logging.DEBUG,  # a line per message belongs at debug, not in production logs
    )
    broker.include_router(build_router(metrics))
    return broker


class MetricsService:
    def __init__(self, settings: MetricsSettings, metrics: UsageMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or UsageMetrics(
            max_models=settings.metrics_max_models, dedupe_window=settings.metrics_dedupe_window
        )
        self.broker = build_broker(settings, self.metrics)
        self.runtime: ServiceRuntime | None = None

    @property
    def ops_port(self) -> int:
        return self.runtime.ops_port if self.runtime is not None else 0

    async def ready(self) -> bool:
        return await self.broker.ping(READY_PING_TIMEOUT_S)

    async def open(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        s = self.settings
        # Ops first, so liveness answers (and readiness says 503) while NATS is still coming up.
        await runtime.serve_ops(s, self.ready, registry=self.metrics.registry)
        nc = await runtime.connect(self.broker, drain_s=s.metrics_shutdown_grace_s)
        js = nc.jetstream()
        await ensure_streams(js, replicas=s.nats_stream_replicas)
        await ensure_consumer(js, USAGE.name, usage_consumer())
        await self.broker.start()
        runtime.announce(js)
        polling = asyncio.create_task(ConsumerLag(self.metrics.registry).run(js, s.metrics_lag_interval_s))
        runtime.on_stop(_cancel, polling)
        log.info("metrics consuming", extra={"ops_port": runtime.ops_port})


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()


@asynccontextmanager
async def running(
    settings: MetricsSettings, metrics: UsageMetrics | None = None
) -> AsyncIterator[MetricsService]:
    """In process (tests): the service as its process runs it, until the block exits."""
    service = MetricsService(settings, metrics)
    async with started(SERVICE_NAME, service.open):
        yield service
