from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NATS


@pytest.fixture
async def worker_nc(nats_url: str) -> AsyncIterator[NATS]:
    """The scripted worker's own connection, as a real worker would have."""
    client = await nats.connect(nats_url)
    yield client
    await client.close()
