from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
from aiohttp import web
from nats.aio.client import Client as NATS

from lobe.devtools.ports import free_port
from lobe.gateway.app import create_app
from lobe.gateway.settings import GatewaySettings

from .support import KEY


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NATS]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@pytest.fixture
async def worker_nc(nats_url: str) -> AsyncIterator[NATS]:
    """The scripted worker's own connection, as a real worker would have."""
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@pytest.fixture
async def gateway(nats_url: str) -> AsyncIterator[str]:
    """The real gateway app on a free port (bootstrap key KEY, no billing): its chat URL."""
    settings = GatewaySettings(
        nats_url=nats_url, gateway_api_keys=f"{KEY}:alice", billing_enabled=False, worker_silence_s=0.5
    )
    runner = web.AppRunner(create_app(settings), handler_cancellation=True)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/v1/chat/completions"
    await runner.cleanup()
