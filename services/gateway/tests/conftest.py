from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS

from lobe.devtools.servers.oidc import OidcProviderServer

from .signing_in import CALLBACKS, CLIENT_ID, CLIENT_SECRET, FakeBilling


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
