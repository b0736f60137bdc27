from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """One pooled session, as the worker has per process."""
    async with aiohttp.ClientSession() as client:
        yield client
