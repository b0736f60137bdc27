"""Batches from a durable JetStream pull consumer, gathered by one callback subscription.

Why not nats.py's PullSubscription.fetch: it awaits each message of a batch through
Subscription.next_msg, which costs a task, a uuid4 and a wait_for timer per message (21 µs of
CPU per message with its ack, against 5 here; docs/performance.md, "Billing ingestion"). Here the
subscription's callback appends each message to a list, and a batch waits on one event.

The contract is fetch's: up to `batch` messages; what the consumer has on hand comes back at once
(a no-wait pull request); only when it has nothing does a request linger, up to `wait_s`, until
the batch fills or the server ends the request. A message that arrives after its fetch returned
(from a request the server had not closed yet) is kept for the next fetch; on close, the kept
ones are nak'ed so they are redelivered at once rather than after ack_wait. Acks are the caller's.

A fetch with nothing to return raises ConsumerGone when the server said the consumer was deleted
(409 Consumer Deleted), or a pull for it found no responder (503) or went unanswered: a pull for a
consumer that does not exist gets a 503 at once from nats-server 2.15 (the suite's) and no reply at all
from 2.9, so asking again would spin or wait forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import DEFAULT_PREFIX, Header, StatusCode

log = logging.getLogger(__name__)

# The local wait outlasts a lingering request's server-side expiry by this much, so the server's
# end of the request (a 408) normally arrives first and no request is left open behind a fetch.
EXPIRY_GRACE_S = 0.25
CONSUMER_DELETED = "Consumer Deleted"


class ConsumerGone(Exception):
    """The durable consumer may no longer exist: its owner should declare it again."""


class BatchPuller:
    """One per fetch loop: its own inbox, so concurrent loops never take each other's messages."""

    def __init__(self, nc: NATS, stream: str, consumer: str) -> None:
        self._nc = nc
        self._next_subject = f"{DEFAULT_PREFIX}.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._inbox = nc.new_inbox()
        self._sub: Subscription | None = None
        self._kept: list[Msg] = []
        self._asking = False  # a request was sent whose end has not been waited for
        self._awaited = 0  # messages the open request may still deliver
        self._request_over = asyncio.Event()
        self._gone: str | None = None  # why the consumer may be gone, until a fetch reports it

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_msg)

    async def close(self) -> None:
        await self._request_ended(0.0)  # a prefetch still arriving: let it land, then hand it back
        if self._sub is not None:
            with contextlib.suppress(Exception):  # closing connection; the consumer itself is durable
                await self._sub.unsubscribe()
            self._sub = None
        kept, self._kept = self._kept, []
        for msg in kept:
            with contextlib.suppress(Exception):  # unacked anyway: redelivered after ack_wait
                await msg.nak()

    async def fetch(self, batch: int, wait_s: float) -> list[Msg]:
        """Up to `batch` messages; an empty list when none came within `wait_s`."""
        if not self._asking and len(self._kept) < batch:
            await self._ask(batch - len(self._kept), wait_s, no_wait=True)
        await self._request_ended(wait_s)
        if not self._kept:
            self._raise_if_gone()
            await self._ask(batch, wait_s, no_wait=False)
            await self._request_ended(wait_s)
            if not self._kept:
                self._raise_if_gone()
        msgs, self._kept = self._kept[:batch], self._kept[batch:]
        if msgs and len(self._kept) < batch:
            # Prefetch: the next batch travels while the caller writes this one. Its messages wait
            # unacked (ack_wait is far longer than a batch); close() hands back any left here.
            await self._ask(batch - len(self._kept), wait_s, no_wait=True)
        return msgs

    def _raise_if_gone(self) -> None:
        gone, self._gone = self._gone, None
        if gone is not None:
            raise ConsumerGone(gone)

    async def _ask(self, batch: int, wait_s: float, *, no_wait: bool) -> None:
        self._asking = True
        self._awaited = batch
        self._request_over.clear()
        request: dict[str, object] = {"batch": batch}
        if no_wait:
            request["no_wait"] = True
        else:
            request["expires"] = int(wait_s * 1e9)
        await self._nc.publish(self._next_subject, json.dumps(request).encode(), reply=self._inbox)

    async def _request_ended(self, wait_s: float) -> None:
        if not self._asking:
            return
        # The wait is bounded locally too: a request lost to a reconnect never ends on its own.
        try:
            async with asyncio.timeout(wait_s + EXPIRY_GRACE_S):
                await self._request_over.wait()
        except TimeoutError:
            self._gone = "pull request unanswered"
        self._asking = False

    async def _on_msg(self, msg: Msg) -> None:
        # A stored message always carries its ack subject; the server's status messages never do
        # (telling them apart by a Status header would let a producer's own header hide a message).
        if msg.reply:
            self._kept.append(msg)
            self._awaited -= 1
            if self._awaited <= 0:
                self._request_over.set()
            return
        headers = msg.headers or {}
        status = headers.get(Header.STATUS)
        if status == StatusCode.CONTROL_MESSAGE:  # an idle heartbeat: the request goes on
            return
        # 404 (nothing on hand), 408 (expired), 409 (too many waiting requests, consumer deleted or
        # changed): this request is over; the next fetch asks again.
        if status == StatusCode.SERVICE_UNAVAILABLE:  # no responders: no consumer of that name
            self._gone = "no responder to the pull request"
        elif status == StatusCode.CONFLICT:
            description = headers.get(Header.DESCRIPTION)
            log.warning("pull request ended: %s %s", status, description)
            if description == CONSUMER_DELETED:
                self._gone = f"{status} {description}"
        self._request_over.set()
