"""What a client learns when a provider fails: the status and OpenAI's code, in a fixed message;
never the provider's words (a proxy's HTML page naming its software and hosts, an organisation id
in a rate-limit message), nor where the upstream is. The words stay in the worker's log under
the request id. A real gateway and worker on NATS, the provider a fake on loopback."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest

from lobe.chat_worker.deployments import Deployment, ModelCatalog, RoutedModel
from lobe.chat_worker.providers.errors import CLIENT_MESSAGES
from lobe.devtools.fake_upstream import FakeUpstream, Reply
from lobe.devtools.ports import free_port
from lobe.gateway.settings import GatewaySettings

from ..e2e.conftest import API_KEY, start_gateway, start_worker

PROXY_PAGE = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
    b"</center><hr><center>nginx/1.25.3 (egress-proxy-7.corp.internal)</center></body></html>"
)
ACCOUNT_429 = json.dumps(
    {
        "error": {
            "message": "Rate limit reached for gpt-4o-mini in organization org-Secr3tOrg4cme on tokens "
            "per min (TPM): Limit 200000, Used 199000.",
            "type": "tokens",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
).encode()
DEPLOYMENT = "azure-eastus-prod-7"
# The e2e helper turns deployment names on for the routing tests; an attacker meets the shipped default.
SHIPPED_DEFAULT = GatewaySettings.model_fields["expose_deployment_names"].default


@pytest.fixture
async def failing() -> AsyncIterator[FakeUpstream]:
    server = await FakeUpstream().start()
    yield server
    await server.stop()


async def ask(nats_url: str, base_url: str, stream: bool) -> tuple[int, list[tuple[str, str]], str]:
    """One chat request through a gateway and a worker routing `gpt` to DEPLOYMENT at `base_url`:
    the status, every header and the body, as the client reads them."""
    catalog = ModelCatalog(
        models=[
            RoutedModel(
                name="gpt",
                deployments=[
                    Deployment(name=DEPLOYMENT, provider="openai", base_url=base_url, model="gpt-4o-mini")
                ],
            )
        ]
    )
    runner, url = await start_gateway(nats_url, expose_deployment_names=SHIPPED_DEFAULT)
    worker = await start_worker(nats_url, models=catalog)
    body = {"model": "gpt", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {API_KEY}"}
            ) as r,
        ):
            return r.status, list(r.headers.items()), await r.text()
    finally:
        await worker.stop()
        await runner.cleanup()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_a_proxys_error_page_never_reaches_the_client(
    nats_url: str, failing: FakeUpstream, caplog: pytest.LogCaptureFixture, stream: bool
) -> None:
    failing.default = Reply(PROXY_PAGE, 502, "text/html")
    with caplog.at_level(logging.WARNING, logger="lobe.chat_worker"):
        status, _, text = await ask(nats_url, failing.url + "/v1", stream)
    assert status == 502
    error = json.loads(text)["error"]
    assert (error["code"], error["message"]) == ("upstream_error", CLIENT_MESSAGES["upstream_error"])
    for leak in ("nginx", "corp.internal", "<html", DEPLOYMENT):
        assert leak not in text
    assert "egress-proxy-7.corp.internal" in caplog.text  # for the operators


async def test_a_providers_rate_limit_message_naming_our_account_is_not_passed_on(
    nats_url: str, failing: FakeUpstream
) -> None:
    failing.default = Reply(ACCOUNT_429, 429, "application/json")
    status, _, text = await ask(nats_url, failing.url + "/v1", stream=False)
    assert status == 429
    error = json.loads(text)["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert error["message"] == CLIENT_MESSAGES["rate_limit_exceeded"]
    assert "org-" not in text
    assert "Secr3t" not in text


async def test_an_unreachable_upstream_is_not_named(nats_url: str) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    status, _, text = await ask(nats_url, nowhere, stream=False)
    assert status == 502
    error = json.loads(text)["error"]
    assert (error["code"], error["message"]) == (
        "upstream_unreachable",
        CLIENT_MESSAGES["upstream_unreachable"],
    )
    assert nowhere.split("//")[1].split("/")[0] not in text
