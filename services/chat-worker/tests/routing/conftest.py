from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import nats
import pytest
from nats.aio.client import Client as NATS

from lobe.chat_worker.deployments import ModelCatalog
from lobe.chat_worker.routing.metrics import RoutingMetrics
from lobe.chat_worker.routing.router import Router
from lobe.chat_worker.routing.store import RoutingStore
from lobe.shared.bus import ensure_streams

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


OpenRouter = Callable[[ModelCatalog], Awaitable[Router]]


@pytest.fixture
async def routers(nats_url: str) -> AsyncIterator[OpenRouter]:
    """Started routers on connections of their own, as separate workers have them, each with a
    metrics registry of its own; the suite's streams exist (breaker transitions are facts)."""
    opened: list[tuple[NATS, Router]] = []

    async def open_router(catalog: ModelCatalog) -> Router:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        await ensure_streams(js, replicas=1)
        router = Router(
            nc, js, f"w{len(opened)}", RoutingMetrics(), store_timeout_s=0.5, snapshot_interval_s=0.01
        )
        await router.start(catalog)
        opened.append((nc, router))
        return router

    yield open_router
    for nc, router in opened:
        await router.stop()
        await nc.close()
