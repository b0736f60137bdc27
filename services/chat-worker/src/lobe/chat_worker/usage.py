"""Publishes the one terminal usage event of a request to JetStream, deduplicated by request id."""

from __future__ import annotations

import asyncio
import logging

from nats.errors import Error as NatsError
from nats.js import JetStreamContext

from lobe.shared.events.streams import USAGE
from lobe.shared.events.usage import USAGE_RECORDED, UsageRecorded

log = logging.getLogger(__name__)

# JetStream may be briefly unreachable (leader election, reconnect): retry long enough to ride
# that out. The stream drops a duplicate of a publish that did land but whose ack was lost.
PUBLISH_ATTEMPTS = 6
FIRST_BACKOFF_S = 0.1


async def publish_usage(js: JetStreamContext, event: UsageRecorded) -> bool:
    payload = event.encode()
    headers = {"Nats-Msg-Id": event.request_id}
    delay = FIRST_BACKOFF_S
    for attempt in range(1, PUBLISH_ATTEMPTS + 1):
        try:
            await js.publish(USAGE_RECORDED, payload, stream=USAGE.name, headers=headers, timeout=2.0)
            return True
        except (NatsError, TimeoutError) as exc:
            log.warning(
                "usage publish failed (attempt %d): %s", attempt, exc, extra={"request_id": event.request_id}
            )
            await asyncio.sleep(delay)
            delay *= 2
    # Last resort: the full event in the log, so it can be replayed into the stream.
    log.error(
        "usage event not published", extra={"request_id": event.request_id, "usage_event": payload.decode()}
    )
    return False
