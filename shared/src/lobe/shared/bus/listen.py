"""A per-request subscription to a catalogued reply subject (`speech.audio.<request_id>`): its
messages decoded into the catalog's payload model, in arrival order, until closed."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import BaseModel, ValidationError

from lobe.shared.bus.calls import EntryRef, concrete, entry_of

log = logging.getLogger(__name__)


class Listening:
    def __init__(self, payload: type[BaseModel]) -> None:
        self.payload = payload
        self.queue: asyncio.Queue[BaseModel] = asyncio.Queue()
        self.subscription: Subscription | None = None

    async def on_msg(self, msg: Msg) -> None:
        try:
            self.queue.put_nowait(self.payload.model_validate_json(msg.data))
        except ValidationError as exc:
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
    listening = Listening(entry.payload)
    listening.subscription = await nc.subscribe(concrete(entry, tokens), cb=listening.on_msg)
    await nc.flush()
    return listening
