"""Handler registration: which stream, subject and durable consumer feed which aggregation.

Handlers take the raw message body rather than a pydantic model so that an invalid event is
counted and acked by the aggregation; FastStream would otherwise fail validation before the
handler runs and, with NACK_ON_ERROR, redeliver a message that can never become valid. The body
comes through a decoder (`raw_body`) and not as a `NatsMessage` parameter: FastStream resolves
that context parameter on a worker thread, one thread hop per usage event (docs/performance.md).
"""

from __future__ import annotations

import logging
from typing import Any

from faststream import AckPolicy
from faststream.message import StreamMessage
from faststream.nats import ConsumerConfig, DeliverPolicy, JStream, NatsRouter, PullSub
from pydantic import ValidationError

from lobe.metrics.aggregation import UsageMetrics
from lobe.metrics.settings import SERVICE_NAME
from lobe.shared.bus import inbox_prefix
from lobe.shared.events.billing import BILLING_LIMIT_EXCEEDED, LimitExceeded
from lobe.shared.events.streams import EVENTS, METRICS_CONSUMER, USAGE
from lobe.shared.events.usage import USAGE_RECORDED, USAGE_SUBJECTS

log = logging.getLogger(__name__)

# Streams are declared by lobe.shared.bus.ensure_streams with the catalog's full config;
# FastStream must not declare them again with a partial one.
USAGE_STREAM = JStream(USAGE.name, declare=False)
EVENTS_STREAM = JStream(EVENTS.name, declare=False)

# A pull consumer shared by every replica: each message goes to one of them, and Prometheus
# sums the replicas. DeliverPolicy.NEW applies only when the durable is first created, so a new
# deployment does not replay a week of history into "now"; afterwards it resumes where it acked.
_PULL = PullSub(batch_size=64, timeout=5.0)
# Fetched messages arrive under the service's own inbox prefix (its NATS user reads only there);
# FastStream's pull subscribers otherwise use the bare `_INBOX.`.
_INBOX = (inbox_prefix(SERVICE_NAME) + ".").encode()


def usage_consumer() -> ConsumerConfig:
    """The durable consumer of every usage subject, as lobe.metrics.service declares it before the
    subscriber binds to it (so a subject added to its filters reaches an existing consumer)."""
    return ConsumerConfig(
        durable_name=METRICS_CONSUMER, filter_subjects=list(USAGE_SUBJECTS), deliver_policy=DeliverPolicy.NEW
    )


async def raw_body(message: StreamMessage[Any]) -> bytes:
    """The message's bytes as published: no JSON decoding, which FastStream tries by default."""
    return message.body


def build_router(metrics: UsageMetrics) -> NatsRouter:
    router = NatsRouter()

    @router.subscriber(
        USAGE_RECORDED,
        config=usage_consumer(),
        stream=USAGE_STREAM,
        durable=METRICS_CONSUMER,
        pull_sub=_PULL,
        inbox_prefix=_INBOX,
        deliver_policy=DeliverPolicy.NEW,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="metrics.usage.recorded",
        description="Counts requests, tokens and latencies per provider/model.",
        decoder=raw_body,
    )
    async def on_usage_recorded(body: bytes) -> None:
        metrics.observe_usage_bytes(body)

    @router.subscriber(
        BILLING_LIMIT_EXCEEDED,
        stream=EVENTS_STREAM,
        durable=METRICS_CONSUMER,
        pull_sub=_PULL,
        inbox_prefix=_INBOX,
        deliver_policy=DeliverPolicy.NEW,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="metrics.billing.limit.exceeded",
        description="Counts limit hits per kind of limit.",
        decoder=raw_body,
    )
    async def on_limit_exceeded(body: bytes) -> None:
        try:
            event = LimitExceeded.decode(body)
        except ValidationError as exc:
            log.warning("invalid limit event dropped", extra={"errors": exc.errors(include_url=False)})
            return
        metrics.observe_limit_exceeded(event)

    return router
