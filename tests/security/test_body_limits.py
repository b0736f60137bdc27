"""What a client can do with a body's size: nothing past the limit costs the gateway a read, a
parse, a rate-limit slot or a budget hold. The limit is the least of MAX_BODY_BYTES and what one
NATS message carries less the chat request event's envelope (a body the bus cannot carry used to
be parsed, rate-limited and held against the budget, then refused at the dispatch). Sent as a
client would, over a raw socket where the framing is the attack."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats

from lobe.gateway.json_request import BUS_ENVELOPE_BYTES
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.billing import BUDGET_RESERVE
from lobe.shared.events.chat import Caller, ChatRequested

from ..e2e.conftest import API_KEY
from .conftest import CHAT, Browser

ANSWER_WITHIN_S = 10.0


def body_of_size(size: int) -> bytes:
    """A valid chat request of exactly `size` bytes."""
    shell: dict[str, Any] = {"model": "mock", "messages": [{"role": "user", "content": ""}]}
    padding = size - len(json.dumps(shell).encode())
    shell["messages"][0]["content"] = "x" * padding
    raw = json.dumps(shell).encode()
    assert len(raw) == size
    return raw


async def bus_limit(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        return nc.max_payload - BUS_ENVELOPE_BYTES
    finally:
        await nc.close()


async def raw_exchange(url: str, head: str, parts: list[bytes]) -> tuple[int, bytes]:
    """Send the request head and `parts` of a body, never finishing it, and read the answer."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.encode())
        for part in parts:
            writer.write(part)
            await writer.drain()
        async with asyncio.timeout(ANSWER_WITHIN_S):
            status_line = await reader.readline()
            rest = await reader.read(65536)
        return int(status_line.split()[1]), rest
    finally:
        writer.close()


def head(url: str, extra: str) -> str:
    host = url.removeprefix("http://")
    return (
        f"POST {CHAT} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {API_KEY}\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    )


async def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(
    browser: Browser,
) -> None:
    url = browser.gateway.url
    # 50 MiB announced, 1 KiB sent, the rest never: the answer comes without waiting for it.
    status, rest = await raw_exchange(url, head(url, "Content-Length: 52428800\r\n"), [b"{" + b" " * 1023])
    assert status == 413
    assert b'"request_too_large"' in rest
    assert browser.bus.subjects == []


async def test_a_chunked_body_is_cut_at_the_limit(browser: Browser, nats_url: str) -> None:
    url = browser.gateway.url
    limit = await bus_limit(nats_url)
    chunk = b" " * 65536
    chunks = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * (limit // len(chunk) + 2)
    # Past the limit and never terminated (no 0-length chunk): the gateway stops reading and answers.
    status, rest = await raw_exchange(url, head(url, "Transfer-Encoding: chunked\r\n"), chunks)
    assert status == 413
    assert b'"request_too_large"' in rest
    assert browser.bus.subjects == []


async def test_a_body_the_bus_cannot_carry_is_refused_at_the_edge_and_one_byte_less_is_admitted(
    browser: Browser, nats_url: str
) -> None:
    limit = await bus_limit(nats_url)
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    url = browser.gateway.url + CHAT
    # Over: within MAX_BODY_BYTES (4 MiB), beyond what NATS carries: no parse, no hold, no bus.
    async with browser.http.post(url, data=body_of_size(limit + 1), headers=headers) as r:
        error = (await r.json())["error"]
        assert r.status == 413
    assert error["code"] == "request_too_large"
    assert f"at most {limit} bytes" in error["message"]
    assert "message bus" in error["message"]
    assert browser.bus.subjects == []
    # At the limit: admitted (its budget hold goes to billing), and its event fits one message.
    at_limit = body_of_size(limit)
    async with browser.http.post(url, data=at_limit, headers=headers) as r:
        assert r.status == 503  # no billing runs to answer the hold
    await browser.bus.wait_for(BUDGET_RESERVE)
    event = ChatRequested(
        request_id="0" * 32,
        caller=Caller(user_id="u" * 128, api_key_id="k" * 16, plan="enterprise"),
        body=ChatCompletionRequest.model_validate_json(at_limit),
        reply_to="_INBOX.gateway." + "x" * 64,
    )
    assert len(event.encode()) <= limit + BUS_ENVELOPE_BYTES
