"""JetStream consumer lag: how far behind its stream each durable consumer of the catalog is.

Polled, because consumer info is a request to the server: a Prometheus collector cannot await,
and a scrape must not wait on NATS. A consumer not created yet (its service never ran) has no
series; one that exists keeps reporting while its service is down, which is when lag grows.
"""

from __future__ import annotations

import asyncio
import logging

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from prometheus_client import CollectorRegistry, Gauge

from lobe.shared.catalog import durable_consumers

log = logging.getLogger(__name__)


class ConsumerLag:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.pending = Gauge(
            "lobe_jetstream_consumer_pending_messages",
            "Messages in the stream not yet delivered to the durable consumer.",
            ["stream", "consumer"],
            registry=registry,
        )
        self.ack_pending = Gauge(
            "lobe_jetstream_consumer_ack_pending_messages",
            "Messages delivered to the durable consumer and not yet acknowledged.",
            ["stream", "consumer"],
            registry=registry,
        )

    async def poll(self, js: JetStreamContext) -> None:
        for stream, consumer in durable_consumers():
            try:
                info = await js.consumer_info(stream, consumer)
            except NotFoundError:
                continue
            self.pending.labels(stream, consumer).set(info.num_pending or 0)
            self.ack_pending.labels(stream, consumer).set(info.num_ack_pending or 0)

    async def run(self, js: JetStreamContext, interval_s: float) -> None:
        """Poll every `interval_s` until cancelled; NATS trouble is logged and retried."""
        while True:
            try:
                await self.poll(js)
            except (NatsError, TimeoutError) as exc:
                log.warning("consumer lag not polled: %r", exc)
            await asyncio.sleep(interval_s)
