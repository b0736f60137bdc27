"""Facts billing publishes beside its work: limits hit, prices missing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from nats.js import JetStreamContext

from lobe.billing.ledger import LedgerRow
from lobe.shared.bus import publish_fact
from lobe.shared.events.billing import (
    BILLING_LIMIT_EXCEEDED,
    BILLING_PRICE_MISSING,
    LimitExceeded,
    PriceMissing,
)

log = logging.getLogger(__name__)

# One price-missing alert per model per this many seconds and process: an unknown model used a
# thousand times a second needs one page, not a thousand.
PRICE_ALERT_INTERVAL_S = 300.0


class Alerts:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self._price_alerted: dict[tuple[str, str], float] = {}
        self._publishing: set[asyncio.Task[bool]] = set()

    def limit_exceeded(self, fact: LimitExceeded) -> None:
        """Published beside the refusal, not before it: the gateway waits BILLING_TIMEOUT_S for the
        answer, and a JetStream that is electing a leader must not turn a 429 into its fail mode."""
        task = asyncio.create_task(publish_fact(self.js, BILLING_LIMIT_EXCEEDED, fact))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def drain(self) -> None:
        """Wait for the facts still being published (at shutdown, before the connection closes)."""
        await asyncio.gather(*self._publishing)

    async def unpriced(self, rows: Sequence[LedgerRow]) -> None:
        now = time.monotonic()
        for row in rows:
            key = (row.event.provider, row.event.priced_model)
            if now - self._price_alerted.get(key, -PRICE_ALERT_INTERVAL_S) < PRICE_ALERT_INTERVAL_S:
                continue
            self._price_alerted[key] = now
            log.error("no price for %s/%s; priced by the default rate", *key)
            fact = PriceMissing(request_id=row.request_id, provider=key[0], model=key[1])
            await publish_fact(self.js, BILLING_PRICE_MISSING, fact)
