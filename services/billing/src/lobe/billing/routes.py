"""Which upstreams each public model may reach, as the chat workers route it: the budget hold is
priced at the dearest of them, so a fallback to a dearer deployment cannot escape the hold.

One owner per fact: the workers own routing (their MODELS_FILE, with fallbacks and reloads), and
billing owns prices. Billing asks a worker (`chat.models`, whose reply lists what each model
reaches) at start and again when its answer is older than `ttl_s`, in the background: a reserve
never waits on it. A model billing has not yet heard of is held at its own price (the window
between a reload adding a model and the next refresh; docs/billing.md).
"""

from __future__ import annotations

import asyncio
import logging
import time

from lobe.shared.bus import BusCalls
from lobe.shared.events.chat import CHAT_MODELS, ModelList

log = logging.getLogger(__name__)
ROUTES_TTL_S = 30.0
ROUTES_TIMEOUT_S = 1.0


class RouteBook:
    def __init__(
        self, bus: BusCalls, ttl_s: float = ROUTES_TTL_S, timeout_s: float = ROUTES_TIMEOUT_S
    ) -> None:
        self.bus = bus
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.routes: dict[str, list[tuple[str, str]]] = {}
        self.fetched_at = float("-inf")
        self._refreshing: asyncio.Task[None] | None = None

    def reaches(self, model: str) -> list[tuple[str, str]]:
        """(provider, upstream model) pairs a request for `model` may be served by; empty when no
        worker has said."""
        if time.monotonic() - self.fetched_at > self.ttl_s and self._refreshing is None:
            self._refreshing = asyncio.create_task(self.refresh())
            self._refreshing.add_done_callback(self._refreshed)
        return self.routes.get(model, [])

    def _refreshed(self, _: asyncio.Task[None]) -> None:
        self._refreshing = None

    async def refresh(self) -> None:
        self.fetched_at = time.monotonic()  # asked, answered or not: the next ask waits ttl_s
        reply = await self.bus.request(CHAT_MODELS, None, self.timeout_s)
        if not isinstance(reply, ModelList):  # unanswered, or unreadable (logged): routes kept
            return
        models = reply.models
        self.routes = {m.id: [(u.provider, u.model) for u in m.reaches] for m in models}

    async def close(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
