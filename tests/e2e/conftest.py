"""In-process suite for chat-path tests: real nats-server, real worker and gateway objects.

Workers that must die mid-answer run as subprocesses (see `worker_process`); everything else
runs in the test's event loop so a test takes milliseconds, not seconds. Every service starts
through lobe.devtools.suite; this tree's defaults are here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from aiohttp import web
from nats.aio.client import Client as NATS
from openai import AsyncOpenAI
from pydantic import SecretStr

from lobe.billing.settings import BillingSettings
from lobe.chat_worker.deployments import BUILTIN, ModelCatalog
from lobe.chat_worker.service import ChatWorker
from lobe.devtools import suite as lobe_suite
from lobe.devtools.fake_media import media_answer
from lobe.devtools.fake_upstream import FakeUpstream
from lobe.devtools.pytest_plugin import MakeUpstream
from lobe.devtools.suite import mock_models, write_mock_models
from lobe.devtools.suite.fixtures import MakeProcess

API_KEY = "sk-test-alice"


def catalog() -> ModelCatalog:
    return mock_models()


@dataclass
class Suite:
    base_url: str
    nats_url: str
    nc: NATS
    client: AsyncOpenAI
    http: aiohttp.ClientSession
    billing_url: str = ""  # set when the test runs billing too
    ops_url: str = ""  # the gateway's ops listener (health, /metrics)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}"}


async def start_worker(nats_url: str, models: ModelCatalog | None = None, **overrides: Any) -> ChatWorker:
    """An in-process worker routing the mock models, or `models` when given."""
    return await lobe_suite.start_worker(nats_url, models, heartbeat_interval_s=0.2, **overrides)


def billing_settings(
    nats_url: str, database_url: str, admin_token: str = "", **overrides: Any
) -> BillingSettings:
    """Billing on a test's own database, its API on a free port; admin API only with a token."""
    return BillingSettings(
        nats_url=nats_url,
        database_url=SecretStr(database_url),
        ops_port=0,
        billing_fetch_timeout_s=0.1,
        billing_admin_token=SecretStr(admin_token) if admin_token else None,
        **overrides,
    )


async def start_gateway(nats_url: str, **overrides: Any) -> tuple[web.AppRunner, str]:
    # Billing, rate limits and the response cache are off unless a test brings them (test_budgets.py,
    # test_rate_limits.py, test_response_cache.py). The routing tests read who answered off
    # X-Lobe-Deployment, which a gateway sends only when told to (tests/security keeps the default).
    gateway = await lobe_suite.start_gateway(nats_url, **{**GATEWAY_DEFAULTS, **overrides})
    return gateway.runner, gateway.url


GATEWAY_DEFAULTS: dict[str, Any] = {
    "expose_deployment_names": True,
    "gateway_api_keys": f"{API_KEY}:alice:free",
    "worker_silence_s": 1.0,
    "billing_enabled": False,
    "rate_limits_enabled": False,
    "cache_enabled": False,
}


@pytest.fixture
async def gateway_only(nats_url: str) -> AsyncIterator[Suite]:
    """A gateway with no worker behind it."""
    gateway = await lobe_suite.start_gateway(nats_url, ops=True, ops_port=0, **GATEWAY_DEFAULTS)
    nc = await nats.connect(nats_url)
    async with aiohttp.ClientSession() as http:
        client = AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=API_KEY)
        yield Suite(gateway.url, nats_url, nc, client, http, ops_url=gateway.ops_url)
    await nc.close()
    await gateway.stop()


@pytest.fixture
async def suite(gateway_only: Suite) -> AsyncIterator[Suite]:
    """Gateway plus one in-process worker."""
    worker = await start_worker(gateway_only.nats_url)
    yield gateway_only
    await worker.stop()


@pytest.fixture
async def builtin_suite(gateway_only: Suite) -> AsyncIterator[Suite]:
    """The gateway and a worker routing the built-in mock, which serves every endpoint."""
    worker = await start_worker(gateway_only.nats_url, BUILTIN)
    yield gateway_only
    await worker.stop()


@pytest.fixture
def worker_process(
    nats_url: str, make_process: MakeProcess, tmp_path: Path
) -> Callable[..., Awaitable[asyncio.subprocess.Process]]:
    """Start chat workers as real processes (to SIGKILL them); returns once each is ready."""
    models = write_mock_models(tmp_path / "models.yaml")

    async def start(**extra_env: str) -> asyncio.subprocess.Process:
        settings = {"nats_url": nats_url, "models_file": models, "heartbeat_interval_s": 0.2}
        return (await make_process("chat-worker", settings, extra_env).start()).proc

    return start


@pytest.fixture(name="media_upstream")
async def media_upstream_fixture(make_upstream: MakeUpstream) -> FakeUpstream:
    """A fake OpenAI answering images, speech and transcriptions (lobe.devtools.fake_media)."""
    upstream = await make_upstream()
    upstream.answer = media_answer
    return upstream
