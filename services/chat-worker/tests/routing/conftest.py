from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import nats
import pytest
from nats.aio.client import Client as NATS

from lobe.chat_worker.routing.store import RoutingStore

OpenStore = Callable[[], Awaitable[RoutingStore]]


@pytest.fixture
async def stores(nats_url: str) -> AsyncIterator[OpenStore]:
    """Routing stores on connections of their own, as separate workers have them."""
    opened: list[tuple[NATS, RoutingStore]] = []

    async def open_store() -> RoutingStore:
        nc = await nats.connect(nats_url)
        store = RoutingStore(nc.jetstream(), timeout_s=0.5, on_degraded=lambda _: None)
        assert await store.open()
        opened.append((nc, store))
        return store

    yield open_store
    for nc, store in opened:
        await store.close()
        await nc.close()
