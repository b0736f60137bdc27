"""A per-request stream on a catalogued core subject (`speech.audio.<request_id>`): the sender's
`publish`, and the listener's subscription whose messages are decoded into the catalog's payload
model, in arrival order, until closed.

Traced as the rest of the bus (lobe.shared.bus.tracing): each message is a `send <subject>`
PRODUCER span whose W3C context rides in its headers, and a `process <subject>` CONSUMER span on
the listener's side, the sender's child.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import BaseModel, ValidationError

from lobe.shared.bus.calls import EntryRef, concrete, entry_of
from lobe.shared.bus.tracing import answering, publishing
from lobe.shared.catalog import Subject

log = logging.getLogger(__name__)


class Listening:
    def __init__(self, entry: Subject) -> None:
        self.entry = entry
        self.queue: asyncio.Queue[BaseModel] = asyncio.Queue()
        self.subscription: Subscription | None = None

    async def on_msg(self, msg: Msg) -> None:
        with answering(self.entry, msg.subject, msg.headers) as span:
            try:
                self.queue.put_nowait(self.entry.payload.model_validate_json(msg.data))
            except ValidationError as exc:
                span.set_attribute("error.type", "malformed")
                log.warning("unreadable %s message: %s", msg.subject, exc.errors(include_url=False)[:3])

    async def next(self, timeout_s: float) -> BaseModel | None:
        """The next message, or None after `timeout_s` of silence."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout_s)
        except TimeoutError:
            return None

    async def close(self) -> None:
        subscription, self.subscription = self.subscription, None
        if subscription is not None:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()


async def listen(nc: NATS, ref: EntryRef, **tokens: str) -> Listening:
    """Subscribe to `ref` (its tokens filled in); live at the server when this returns."""
    entry = entry_of(ref)
    listening = Listening(entry)
    listening.subscription = await nc.subscribe(concrete(entry, tokens), cb=listening.on_msg)
    await nc.flush()
    return listening


async def publish(nc: NATS, ref: EntryRef, message: BaseModel, **tokens: str) -> None:
    """One message of the stream to its listener (core NATS: at most once, in the sender's order)."""
    entry = entry_of(ref)
    with publishing(entry, {}) as (_, headers):
        await nc.publish(concrete(entry, tokens), message.model_dump_json().encode(), headers=headers)
