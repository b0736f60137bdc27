"""Publishing facts to JetStream: the one way every service does it.

The stream and the `Nats-Msg-Id` come from the event catalog, so a retried publish (ours, or a
replica's) is dropped by the stream's duplicate window and no service writes the id by hand. Each
publish is a PRODUCER span whose context rides along as a W3C `traceparent` header, so a
consumer's span continues or links back to the request that produced the fact
(lobe.shared.bus.tracing).
"""

from __future__ import annotations

import asyncio
import logging
from functools import cache

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from opentelemetry.trace import Status, StatusCode
from pydantic import BaseModel

from lobe.shared.bus.tracing import publishing
from lobe.shared.catalog import Subject, lookup

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.1
# Doubling up to this: a stream electing a leader refuses at once ("no response from stream"),
# so attempts, not timeouts, measure how long a publisher waits; the pause stays short enough to
# publish soon after the election.
MAX_BACKOFF_S = 1.0
PUBLISH_TIMEOUT_S = 2.0


@cache
def _entry(subject: str) -> Subject:
    return lookup(subject)


async def publish_fact(js: JetStreamContext, subject: str, event: BaseModel, attempts: int = 1) -> bool:
    """Publish `event` on `subject`; retry `attempts` times with backoff (JetStream may be electing
    a leader or reconnecting). False once every attempt failed: then the whole event is in the
    error log, so it can be replayed into the stream."""
    entry = _entry(subject)
    payload = event.model_dump_json().encode()
    context = {"request_id": getattr(event, "request_id", None)}
    stream = entry.stream.name if entry.stream else None
    delay = FIRST_BACKOFF_S
    with publishing(entry, {"Nats-Msg-Id": entry.nats_msg_id(event)}) as (span, headers):
        for attempt in range(1, attempts + 1):
            try:
                await js.publish(subject, payload, stream=stream, headers=headers, timeout=PUBLISH_TIMEOUT_S)
                return True
            except (NatsError, TimeoutError) as exc:
                span.add_event("publish failed", {"attempt": attempt, "error.type": type(exc).__name__})
                log.warning(
                    "%s publish failed (attempt %d): %s",
                    subject,
                    attempt,
                    exc,
                    extra=context,
                )
                if attempt < attempts:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, MAX_BACKOFF_S)
        span.set_status(Status(StatusCode.ERROR, "not published"))
    log.error("%s not published", subject, extra={**context, "event": payload.decode()})
    return False
