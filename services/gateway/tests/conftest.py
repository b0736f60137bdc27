from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS

from lobe.devtools.servers.oidc import OidcProviderServer

from .signing_in import CALLBACKS, CLIENT_ID, CLIENT_SECRET, FakeBilling
from .support import ScriptedWorker, answers


@pytest.fixture
async def worker_nc(nats_url: str) -> AsyncIterator[NATS]:
    """The scripted worker's own connection, as a real worker would have."""
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@pytest.fixture
def oidc_provider(
    make_oidc_provider: Callable[[list[dict[str, Any]]], OidcProviderServer],
) -> OidcProviderServer:
    """The OpenID provider the gateway's sign-in is registered with (over HTTP and HTTPS)."""
    return make_oidc_provider(
        [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": CALLBACKS}]
    )


@pytest.fixture
async def fake_billing(nc: NATS) -> FakeBilling:
    return await FakeBilling(nc).start()


@pytest.fixture
async def cached_words_worker(worker_nc: NATS) -> ScriptedWorker:
    """A worker answering every request (up to 100) in full with "cached words"."""
    return await ScriptedWorker(worker_nc, scripts=answers(100, "cached words")).start()
