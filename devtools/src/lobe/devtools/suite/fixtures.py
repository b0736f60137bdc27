"""pytest fixtures for tests that run the suite's services, loaded by the repository's conftest.py
(they import the services, so the harness every package loads, lobe.devtools.pytest_plugin, cannot
hold them).

- `worker`: an in-process chat worker routing the mock models on `nats_url`.
- `chat_worker(catalog, **settings)`: in-process workers routing `catalog`, each with a worker id and
  a metrics registry of its own, so that several in one process read their cancels and count their
  routing apart, as separate processes would.
- `make_process(service, settings, env, name=, log=)`: a service process, not yet started; every one
  is stopped (SIGTERM, then SIGKILL) after the test.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from lobe.chat_worker.deployments import ModelCatalog
from lobe.chat_worker.service import ChatWorker
from lobe.devtools.suite.processes import ServiceProcess, service_process
from lobe.devtools.suite.services import start_worker

MakeProcess = Callable[..., ServiceProcess]
StartWorker = Callable[..., Awaitable[ChatWorker]]


@pytest.fixture
async def worker(nats_url: str) -> AsyncIterator[ChatWorker]:
    """An in-process chat worker serving the mock models (lobe.devtools.suite.mock_models)."""
    running = await start_worker(nats_url, heartbeat_interval_s=0.2)
    yield running
    await running.stop()


@pytest.fixture
async def chat_worker(nats_url: str) -> AsyncIterator[StartWorker]:
    """chat_worker(catalog, **settings) -> a started worker on `nats_url`, stopped after the test."""
    started: list[ChatWorker] = []

    async def start(catalog: ModelCatalog, **settings: Any) -> ChatWorker:
        values = {"heartbeat_interval_s": 0.2, "worker_id": f"test-{uuid.uuid4().hex[:8]}", **settings}
        started.append(await start_worker(nats_url, catalog, registry=CollectorRegistry(), **values))
        return started[-1]

    yield start
    for running in reversed(started):
        await running.stop()


@pytest.fixture
async def make_process() -> AsyncIterator[MakeProcess]:
    made: list[ServiceProcess] = []

    def make(
        service: str, settings: dict[str, Any] | None = None, env: dict[str, str] | None = None, **kw: Any
    ) -> ServiceProcess:
        made.append(service_process(service, settings, env, **kw))
        return made[-1]

    yield make
    for process in reversed(made):
        await process.stop()
