"""Which stream and durable consumer feed which aggregation, on the bus (lobe.shared.bus.consume).

Handlers take the raw message body rather than a pydantic model so that an invalid event is
counted and acked by the aggregation: failing validation before the handler would leave a
message that can never become valid to be redelivered forever.

A pull consumer shared by every replica: each message goes to one of them, and Prometheus sums
the replicas. DeliverPolicy.NEW applies only when the durable is first created, so a new
deployment does not replay a week of history into "now"; afterwards it resumes where it acked.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from pydantic import ValidationError

from lobe.metrics.aggregation import UsageMetrics
from lobe.shared.bus import BusCalls
from lobe.shared.events.billing import LimitExceeded
from lobe.shared.events.streams import EVENTS, METRICS_CONSUMER, USAGE

log = logging.getLogger(__name__)
BATCH = 64
# How long a fetch lingers when nothing is pending; bounds how long a stop waits on it.
FETCH_WAIT_S = 1.0


async def consume(bus: BusCalls, metrics: UsageMetrics) -> None:
    """Count usage and limit facts until the bus stops its handlers."""

    async def on_usage(msgs: Sequence[Msg]) -> float:
        for msg in msgs:
            metrics.observe_usage_bytes(msg.data)
            await msg.ack()
        return 0.0

    async def on_limit_exceeded(msgs: Sequence[Msg]) -> float:
        for msg in msgs:
            try:
                metrics.observe_limit_exceeded(LimitExceeded.decode(msg.data))
            except ValidationError as exc:
                log.warning("invalid limit event dropped", extra={"errors": exc.errors(include_url=False)})
            await msg.ack()
        return 0.0

    for stream, handler in ((USAGE, on_usage), (EVENTS, on_limit_exceeded)):
        await bus.consume(
            stream, METRICS_CONSUMER, BATCH, handler, wait_s=FETCH_WAIT_S, deliver_policy=DeliverPolicy.NEW
        )
