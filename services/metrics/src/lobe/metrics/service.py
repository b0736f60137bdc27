"""The metrics service on the shared runtime (lobe.shared.process): ops first, then NATS, the
durable consumers (lobe.metrics.router) and the lag poll; on SIGTERM the bus drains within the grace."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from lobe.metrics.aggregation import UsageMetrics
from lobe.metrics.lag import ConsumerLag
from lobe.metrics.router import consume
from lobe.metrics.settings import SERVICE_NAME, MetricsSettings
from lobe.shared.bus import Bus, ensure_streams
from lobe.shared.process import ServiceRuntime, started

log = logging.getLogger(__name__)


class MetricsService:
    def __init__(self, settings: MetricsSettings, metrics: UsageMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or UsageMetrics(
            max_models=settings.metrics_max_models, dedupe_window=settings.metrics_dedupe_window
        )
        self.bus = Bus(settings, SERVICE_NAME, SERVICE_NAME)
        self.runtime: ServiceRuntime | None = None

    @property
    def ops_port(self) -> int:
        return self.runtime.ops_port if self.runtime is not None else 0

    async def ready(self) -> bool:
        return self.bus.connected

    async def open(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        s = self.settings
        # Ops first, so liveness answers (and readiness says 503) while NATS is still coming up.
        await runtime.serve_ops(s, self.ready, registry=self.metrics.registry)
        await runtime.connect(self.bus, drain_s=s.metrics_shutdown_grace_s)
        js = self.bus.js
        await ensure_streams(js, replicas=s.nats_stream_replicas)
        await consume(self.bus, self.metrics)
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
