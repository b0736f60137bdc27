from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from lobe.devtools.fake_upstream import FakeUpstream


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    server = await FakeUpstream().start()
    yield server
    await server.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """One pooled session, as the worker has per process."""
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture(autouse=True)
def _provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "AZURE_OPENAI_API_KEY"):
        monkeypatch.setenv(env, f"test-key-{env.split('_')[0].lower()}")
