"""The suite the `staging`-marked tests talk to: a deployed one, or the local one.

With STAGING_URL set (the deployed API, with or without its `/v1`), they call it with
STAGING_API_KEY (`make e2e-staging`, CI after each staging deploy); nothing local starts. Without
it, `make test` runs the same tests against a local suite: the real gateway (rate limits on, in
real Redis) and a worker on real NATS, the bootstrap key of a user of each test's own.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from openai import AsyncOpenAI

from .conftest import start_gateway, start_worker

URL_ENV, KEY_ENV, MODEL_ENV = "STAGING_URL", "STAGING_API_KEY", "STAGING_MODEL"
TIMEOUT_S = 60.0


@dataclass
class Deployed:
    base_url: str  # without /v1
    api_key: str
    model: str  # a model the suite serves
    client: AsyncOpenAI
    http: aiohttp.ClientSession

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


@pytest.fixture(name="deployed")
async def deployed_fixture(request: pytest.FixtureRequest) -> AsyncIterator[Deployed]:
    model = os.environ.get(MODEL_ENV) or "mock"
    url = os.environ.get(URL_ENV, "").rstrip("/").removesuffix("/v1")
    if url:
        key = os.environ.get(KEY_ENV)
        if not key:  # a run against staging without its key would test nothing: fail, never skip
            pytest.fail(f"{URL_ENV} is set but {KEY_ENV} is not: the staging tests need its API key")
        async with _session(url, key, model) as suite:
            yield suite
        return
    nats_url: str = request.getfixturevalue("nats_url")
    redis_url: str = request.getfixturevalue("redis_url")
    key = f"sk-staging-{uuid.uuid4().hex}"
    runner, base_url = await start_gateway(
        nats_url,
        redis_url=redis_url,
        rate_limits_enabled=True,
        gateway_api_keys=f"{key}:staging-{uuid.uuid4().hex[:8]}:free",
    )
    worker = await start_worker(nats_url)
    try:
        async with _session(base_url, key, model) as suite:
            yield suite
    finally:
        await worker.stop()
        await runner.cleanup()


@contextlib.asynccontextmanager
async def _session(base_url: str, api_key: str, model: str) -> AsyncIterator[Deployed]:
    client = AsyncOpenAI(base_url=f"{base_url}/v1", api_key=api_key, timeout=TIMEOUT_S, max_retries=0)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as http:
        yield Deployed(base_url, api_key, model, client, http)
        await client.close()
