"""In-process suite for chat-path tests: real nats-server, real worker and gateway objects.

Workers that must die mid-answer run as subprocesses (see `worker_process`); everything else
runs in the test's event loop so a test takes milliseconds, not seconds.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
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
from lobe.chat_worker.deployments import Deployment, ModelCatalog, RoutedModel
from lobe.chat_worker.service import ChatWorker
from lobe.chat_worker.settings import WorkerSettings
from lobe.devtools.fake_media import media_answer
from lobe.devtools.fake_upstream import FakeUpstream
from lobe.devtools.ports import free_port
from lobe.gateway.app import create_app, start_ops
from lobe.gateway.settings import GatewaySettings
from lobe.shared.ops import bound_port

API_KEY = "sk-test-alice"
SLOW_MOCK_DELAY_S = 0.2
STALL_MOCK_DELAY_S = 1.5

MODELS_YAML = f"""
models:
  - name: mock
    deployments: [{{name: mock, provider: mock}}]
  - name: mock-slow
    deployments: [{{name: mock-slow, provider: mock, chunk_delay_s: {SLOW_MOCK_DELAY_S}}}]
  - name: mock-stall
    deployments: [{{name: mock-stall, provider: mock, chunk_delay_s: {STALL_MOCK_DELAY_S}}}]
"""


def catalog() -> ModelCatalog:
    return ModelCatalog(
        models=[
            RoutedModel(name="mock", deployments=[Deployment(name="mock", provider="mock")]),
            RoutedModel(
                name="mock-slow",
                deployments=[Deployment(name="mock-slow", provider="mock", chunk_delay_s=SLOW_MOCK_DELAY_S)],
            ),
            RoutedModel(
                name="mock-stall",
                deployments=[
                    Deployment(name="mock-stall", provider="mock", chunk_delay_s=STALL_MOCK_DELAY_S)
                ],
            ),
        ]
    )


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
    settings = WorkerSettings(nats_url=nats_url, ops_port=0, heartbeat_interval_s=0.2, **overrides)
    worker = ChatWorker(settings, models or catalog())
    await worker.start()
    return worker


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
    defaults: dict[str, object] = {
        "expose_deployment_names": True,
        "gateway_api_keys": f"{API_KEY}:alice:free",
        "worker_silence_s": 1.0,
        "billing_enabled": False,
        "rate_limits_enabled": False,
        "cache_enabled": False,
    }
    settings = GatewaySettings(nats_url=nats_url, **{**defaults, **overrides})
    runner = web.AppRunner(create_app(settings), handler_cancellation=True)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def gateway_only(nats_url: str) -> AsyncIterator[Suite]:
    """A gateway with no worker behind it."""
    runner, base_url = await start_gateway(nats_url, ops_port=0)
    ops = await start_ops(runner.app)
    nc = await nats.connect(nats_url)
    async with aiohttp.ClientSession() as http:
        client = AsyncOpenAI(base_url=f"{base_url}/v1", api_key=API_KEY)
        yield Suite(base_url, nats_url, nc, client, http, ops_url=f"http://127.0.0.1:{bound_port(ops)}")
    await nc.close()
    await runner.cleanup()
    await ops.cleanup()


@pytest.fixture
async def suite(gateway_only: Suite) -> AsyncIterator[Suite]:
    """Gateway plus one in-process worker."""
    worker = await start_worker(gateway_only.nats_url)
    yield gateway_only
    await worker.stop()


@pytest.fixture
def models_file(tmp_path: Path) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(MODELS_YAML)
    return path


async def wait_ready(
    port: int, proc: asyncio.subprocess.Process, timeout_s: float = 20.0, path: str = "/health/ready"
) -> None:
    url = f"http://127.0.0.1:{port}{path}"
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with aiohttp.ClientSession() as http:
        while asyncio.get_running_loop().time() < deadline:
            assert proc.returncode is None, f"worker exited with {proc.returncode}"
            try:
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(f"worker on ops port {port} not ready in {timeout_s}s")


@pytest.fixture
def worker_process(
    nats_url: str, models_file: Path
) -> Iterator[Callable[..., Awaitable[asyncio.subprocess.Process]]]:
    """Start chat workers as real processes (to SIGKILL them); returns once each is ready."""
    started: list[asyncio.subprocess.Process] = []

    async def start(**extra_env: str) -> asyncio.subprocess.Process:
        port = free_port()
        env = {
            **os.environ,
            "NATS_URL": nats_url,
            "MODELS_FILE": str(models_file),
            "OPS_PORT": str(port),
            "HEARTBEAT_INTERVAL_S": "0.2",
            "LOG_FORMAT": "text",
            **extra_env,
        }
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "lobe.chat_worker", env=env)
        started.append(proc)
        await wait_ready(port, proc)
        return proc

    yield start
    for proc in started:
        if proc.returncode is None:
            proc.kill()


@pytest.fixture(name="media_upstream")
async def media_upstream_fixture() -> AsyncIterator[FakeUpstream]:
    """A fake OpenAI answering images, speech and transcriptions (lobe.devtools.fake_media)."""
    upstream = await FakeUpstream(answer=media_answer).start()
    yield upstream
    await upstream.stop()
