"""pytest fixtures for tests that run chat workers in the test's event loop: the worker's own
package tests and the cross-service suites, loaded by the repository's conftest.py (as billing's
are, from lobe.billing.testing).

Each worker gets a worker id and a metrics registry of its own, so that several in one process
read their cancels and count their routing apart, as separate processes would.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from lobe.chat_worker.deployments import ModelCatalog
from lobe.chat_worker.service import ChatWorker
from lobe.chat_worker.settings import WorkerSettings


@asynccontextmanager
async def running_worker(nats_url: str, catalog: ModelCatalog, **settings: Any) -> AsyncIterator[ChatWorker]:
    """A started worker routing `catalog`, stopped on exit (as SIGTERM stops a process's)."""
    values: dict[str, Any] = {
        "nats_url": nats_url,
        "ops_port": 0,
        "heartbeat_interval_s": 0.2,
        "worker_id": f"test-{uuid.uuid4().hex[:8]}",
    }
    worker = ChatWorker(WorkerSettings(**{**values, **settings}), catalog, registry=CollectorRegistry())
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()


StartWorker = Callable[..., Awaitable[ChatWorker]]


@pytest.fixture
async def chat_worker(nats_url: str) -> AsyncIterator[StartWorker]:
    """chat_worker(catalog, **settings) -> a started worker on `nats_url`, stopped after the test."""
    async with AsyncExitStack() as stack:

        async def start(catalog: ModelCatalog, **settings: Any) -> ChatWorker:
            return await stack.enter_async_context(running_worker(nats_url, catalog, **settings))

        yield start
