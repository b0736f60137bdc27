"""`consume`: batches from a durable JetStream consumer, handed to a handler that acks each message
after its work is committed (or naks it), in fetch loops that finish the batch in hand on stop.

The consumer's filter is what the catalog routes to it (every subject of the stream whose
consumers name this service with this durable), so a subject added to the catalog reaches a
deployed consumer at its next start. Batches come from lobe.shared.bus.pull (why not nats.py's
fetch: see there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from lobe.shared.bus.connection import ensure_consumer
from lobe.shared.bus.pull import BatchPuller, ConsumerGone
from lobe.shared.catalog.entries import CATALOG
from lobe.shared.events.streams import StreamSpec

log = logging.getLogger(__name__)

# A handler acks or naks each message and returns how long its loop pauses (0 when healthy).
BatchHandler = Callable[[Sequence[Msg]], Awaitable[float]]
FETCH_FAILED_PAUSE_S = 1.0


def routed_subjects(stream: StreamSpec, durable: str, service: str) -> list[str]:
    subjects = [
        entry.subject
        for entry in CATALOG
        if entry.stream == stream
        and any(c.service == service and c.group == durable for c in entry.consumers)
    ]
    if not subjects:
        raise ValueError(
            f"the event catalog routes nothing on {stream.name} to {service}'s consumer {durable}"
        )
    return subjects


def consumer_config(stream: StreamSpec, durable: str, service: str, **config: Any) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=durable,
        filter_subjects=routed_subjects(stream, durable, service),
        ack_policy=AckPolicy.EXPLICIT,
        **config,
    )


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Pause for `seconds`, or less when `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


class Consuming(Protocol):
    async def stop(self) -> None:
        """Stop fetching; each loop finishes (its handler acks) the batch in hand."""


@dataclass(frozen=True)
class Batches:
    """How a consumer's loops take batches: up to `batch` at once, a fetch lingering up to `wait_s`."""

    batch: int
    handler: BatchHandler
    wait_s: float
    loops: int


class Consumer:
    def __init__(
        self, nc: NATS, js: JetStreamContext, stream: StreamSpec, durable: str, batches: Batches
    ) -> None:
        self._nc, self._js = nc, js
        self.stream, self.durable = stream, durable
        self.batch, self.handler, self.wait_s = batches.batch, batches.handler, batches.wait_s
        self._loop_count = batches.loops
        self._stop = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._config: ConsumerConfig | None = None

    async def start(self, config: ConsumerConfig) -> None:
        self._config = config
        await ensure_consumer(self._js, self.stream.name, config)
        for i in range(self._loop_count):
            puller = BatchPuller(self._nc, self.stream.name, self.durable)
            await puller.start()
            name = f"consume {self.stream.name}/{self.durable} {i}"
            self._loops.append(asyncio.create_task(self._run(puller), name=name))

    async def stop(self) -> None:
        """Stop fetching; each loop finishes (its handler acks) the batch in hand."""
        self._stop.set()
        done = await asyncio.gather(*self._loops, return_exceptions=True)
        for task, result in zip(self._loops, done, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("%s ended with %r", task.get_name(), result)
        self._loops.clear()

    async def _run(self, puller: BatchPuller) -> None:
        stop = self._stop
        try:
            while not stop.is_set():
                try:
                    msgs = await puller.fetch(self.batch, self.wait_s)
                except ConsumerGone as why:
                    await self._redeclare(str(why))
                    continue
                except Exception as exc:  # connection trouble: nats.py reconnects on its own
                    log.warning("%s fetch failed: %r", self.durable, exc)  # repr: some have no message
                    await sleep_unless(stop, FETCH_FAILED_PAUSE_S)
                    continue
                if not msgs:
                    continue
                try:
                    pause = await self.handler(msgs)
                except Exception:  # a bug: the batch stays unacked, so it is redelivered after ack_wait
                    log.exception("%s batch handler failed", self.durable)
                    pause = FETCH_FAILED_PAUSE_S
                if pause:
                    await sleep_unless(stop, pause)
        finally:
            await puller.close()

    async def _redeclare(self, why: str) -> None:
        """Declare the durable consumer again (a no-op when it exists with this config): deleted, it
        would otherwise never deliver again, and nothing but this loop pulls from it."""
        assert self._config is not None  # set by start, before any loop runs
        log.warning("%s: %s; declaring the consumer again", self.durable, why)
        try:
            await ensure_consumer(self._js, self.stream.name, self._config)
        except Exception as exc:  # JetStream electing a leader or reconnecting: ask again shortly
            log.warning("%s: declaring the consumer failed: %r", self.durable, exc)
            await sleep_unless(self._stop, FETCH_FAILED_PAUSE_S)
