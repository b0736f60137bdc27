"""A client never learns the operator's deployment names (they often name the account or key that
served: `azure-eastus-prod-7`), on an answer or on an error, in a header or in the body. A real
gateway with its default settings and a real worker on NATS, the provider a fake on loopback; the
client sends what an attacker would, and reads every header and byte of what comes back. Internal
clients may be given the names (EXPOSE_DEPLOYMENT_NAMES, docs/routing.md)."""

from __future__ import annotations

import pytest

from lobe.devtools.fake_upstream import FakeUpstream, Reply
from lobe.devtools.provider_fixtures import load

from .test_provider_errors import DEPLOYMENT, ask

OVERLOADED = Reply(b'{"error": {"message": "overloaded", "type": "server_error"}}', 503, "application/json")


def assert_unnamed(headers: list[tuple[str, str]], text: str) -> None:
    for name, value in headers:
        assert DEPLOYMENT not in value, name
    assert "x-lobe-deployment" not in {name.lower() for name, _ in headers}
    assert DEPLOYMENT not in text
    # The route still went out, without its name: the provider and the attempts.
    assert ("X-Lobe-Provider", "openai") in headers


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_an_answer_does_not_name_its_deployment(
    nats_url: str, upstream: FakeUpstream, stream: bool
) -> None:
    upstream.default = load("openai/chat_stream_text.sse").reply()
    status, headers, text = await ask(nats_url, upstream.url + "/v1", stream)
    assert status == 200
    assert_unnamed(headers, text)
    assert ("X-Lobe-Attempts", "1") in headers


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_an_error_does_not_name_the_deployment_that_failed(
    nats_url: str, upstream: FakeUpstream, stream: bool
) -> None:
    upstream.default = OVERLOADED
    status, headers, text = await ask(nats_url, upstream.url + "/v1", stream)
    assert status >= 500
    assert '"error"' in text
    assert_unnamed(headers, text)
