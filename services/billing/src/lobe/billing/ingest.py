"""The usage ingester: a durable JetStream pull consumer writing batches to the ledger.

Each message's fate depends on the batch's transaction (ack after commit, nak with a
per-message delay on a database failure, dead-letter and ack for a malformed one), so `handle`
takes nats.py's messages; batches come from the bus (`Bus.consume`, lobe.shared.bus.consume).

Guarantees: a message is acked only after the transaction holding its row commits (or after its
dead letter is stored); any failure before that leaves it unacked or nak'ed, so JetStream
redelivers it, and the dedupe table turns a redelivery into a no-op. Never lost, never twice.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import asyncpg
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from opentelemetry import trace
from pydantic import ValidationError

from lobe.billing import metrics
from lobe.billing.alerts import Alerts
from lobe.billing.ledger import LedgerRow, PartitionCache, Written, price_event, write_batch
from lobe.billing.plans import PlanBook
from lobe.billing.prices import PriceTable
from lobe.shared.bounded_labels import BoundedLabels
from lobe.shared.bus import publish_fact
from lobe.shared.config_file import describe
from lobe.shared.events.usage import (
    USAGE_DEAD_LETTER,
    USAGE_REPORTED,
    UsageDeadLetter,
    UsageRecorded,
    gateway_may_report,
)

log = logging.getLogger(__name__)
TRACER = trace.get_tracer("lobe.billing")

# Redelivery backoff after a failed batch: 1 s, 2 s, 4 s ... capped, so a database outage of any
# length is ridden out without hammering it (max_deliver is unlimited: never give up on usage).
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 5.0  # also bounds how long after the database returns ingestion resumes


def consumer_settings(ack_wait_s: float) -> dict[str, Any]:
    """The durable consumer's settings beyond what the bus derives from the catalog (its name, its
    filter: every usage subject, and explicit acks)."""
    return {
        "deliver_policy": DeliverPolicy.ALL,
        "ack_wait": ack_wait_s,
        "max_deliver": -1,
        "max_ack_pending": 50_000,
    }


def backoff_s(deliveries: int) -> float:
    return min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2.0 ** min(max(deliveries - 1, 0), 16))


def deliveries(msg: Msg) -> int:
    try:
        return int(msg.metadata.num_delivered)
    except Exception:  # not a JetStream message (tests publishing by hand)
        return 1


class Ingester:
    def __init__(
        self,
        js: JetStreamContext,
        pool: asyncpg.Pool,
        prices: PriceTable,
        plans: PlanBook,
        alerts: Alerts,
    ) -> None:
        self.js = js
        self.pool = pool
        self.prices = prices
        self.plans = plans
        self.alerts = alerts
        self.partitions = PartitionCache()
        self.cost_labels = BoundedLabels(metrics.MAX_MODEL_LABELS)

    async def handle(self, msgs: Sequence[Msg]) -> float:
        """Process one fetched batch; returns how long the loop should pause (0 when healthy).

        The bus spans the batch (linked to each request whose usage it carries) and each request's
        part of it (lobe.shared.bus.tracing); the ledger write is a child of the batch's span."""
        started = time.perf_counter()
        by_row: dict[str, LedgerRow] = {}
        by_request: dict[str, list[Msg]] = {}
        for msg in msgs:
            try:
                event = UsageRecorded.decode(msg.data)
            except ValidationError as exc:
                await self.dead_letter(msg, "invalid usage event: " + describe(exc, root="<body>"))
                continue
            reported = msg.subject == USAGE_REPORTED
            if reported and not gateway_may_report(event):
                await self.dead_letter(msg, f"{USAGE_REPORTED} carries only what a gateway reports")
                continue
            seen = by_row.get(event.request_id)
            if seen is not None and (reported or not seen.reported):  # same request twice in one batch
                by_request[event.request_id].append(msg)
                continue
            try:
                row = price_event(event, self.prices, self.plans, reported)
            except (ArithmeticError, ValueError, OverflowError) as exc:  # valid, yet cannot be priced
                await self.dead_letter(msg, f"cannot be priced: {exc!r}")
                continue
            # A worker's record after the gateway's report of one request, in one batch: the record
            # stands (lobe.billing.ledger); the report's message is acked with it.
            by_request.setdefault(event.request_id, []).insert(0, msg)
            by_row[event.request_id] = row
        rows = list(by_row.values())
        if not rows:
            return 0.0
        try:
            written = await self._write(rows)
        except (asyncpg.DataError, OverflowError, ValueError) as exc:
            # A valid event the database cannot store (a NUL byte in a string, an out-of-range
            # number; asyncpg's own encoder raises OverflowError or ValueError for a value past its
            # column's range): dead-letter that one event, not the batch around it. Retrying would
            # never end.
            if len(rows) == 1:
                msgs_of = by_request[rows[0].request_id]
                await self.dead_letter(msgs_of[0], f"rejected by the ledger: {exc}")
                for dup in msgs_of[1:]:
                    await dup.ack()
                return 0.0
            log.warning("batch rejected (%s); retrying its %d events one by one", exc, len(rows))
            pause = 0.0
            for row in rows:
                pause = max(pause, await self.handle(by_request[row.request_id]))
            return pause
        except Exception as exc:
            # Database down, deadlock, schema trouble or a bug: nothing committed, so redeliver
            # later. Usage waits in the stream rather than being dropped.
            self.partitions = PartitionCache()
            return await self._retry_later(by_request, type(exc).__name__, exc)
        for row in written.unadmitted:
            first, *rest = by_request.pop(row.request_id)
            await self.dead_letter(first, "a cache_hit report for a request billing admitted no hold for")
            for dup in rest:
                await dup.ack()
        for group in by_request.values():
            for msg in group:
                await msg.ack()
        inserted = written.inserted
        metrics.INGESTED.inc(len(inserted))
        metrics.DUPLICATES.inc(sum(len(g) for g in by_request.values()) - len(inserted))
        # Summed per model first: one labelled increment per model and batch, not one per event.
        cost_by_model: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for row in inserted:
            cost_by_model[self.cost_labels.model_labels(row.event.provider, row.event.model)] += row.cost_usd
        for labels, cost in cost_by_model.items():
            metrics.COST.labels(*labels).inc(float(cost))
        unpriced = [r for r in inserted if not r.priced]
        metrics.UNPRICED.inc(len(unpriced))
        await self.alerts.unpriced(unpriced)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        return 0.0

    async def _write(self, rows: list[LedgerRow]) -> Written:
        with TRACER.start_as_current_span("ledger write", attributes={"db.system": "postgresql"}) as span:
            await self.partitions.ensure(self.pool, rows)
            async with self.pool.acquire() as conn, conn.transaction():
                inserted = await write_batch(conn, rows)
            span.set_attribute("lobe.ledger.rows_inserted", len(inserted.inserted))
            return inserted

    async def _retry_later(self, by_request: dict[str, list[Msg]], reason: str, exc: BaseException) -> float:
        metrics.BATCH_FAILURES.labels(reason=reason).inc()
        worst = 1
        for group in by_request.values():
            for msg in group:
                n = deliveries(msg)
                worst = max(worst, n)
                try:
                    await msg.nak(delay=backoff_s(n))
                except Exception as nak_exc:  # unacked anyway: redelivered after ack_wait
                    log.debug("nak failed: %s", nak_exc)
        log.warning(
            "ledger write failed (%s: %s); %d events will be redelivered", reason, exc, len(by_request)
        )
        return backoff_s(worst)

    async def dead_letter(self, msg: Msg, reason: str) -> None:
        """Store the message on usage.dead, then ack it; if the store fails, leave it for redelivery."""
        seq = _stream_seq(msg)
        dead = UsageDeadLetter(
            reason=reason,
            subject=msg.subject,
            stream_sequence=seq,
            payload=msg.data.decode("utf-8", errors="replace"),
        )
        if not await publish_fact(self.js, USAGE_DEAD_LETTER, dead):
            log.error("dead letter not stored; leaving the message for redelivery", extra={"stream_seq": seq})
            return
        metrics.DEAD_LETTERED.inc()
        log.error(
            "malformed usage event sent to %s: %s", USAGE_DEAD_LETTER, reason, extra={"stream_seq": seq}
        )
        await msg.ack()


def _stream_seq(msg: Msg) -> int | None:
    try:
        return int(msg.metadata.sequence.stream)
    except Exception:
        return None
