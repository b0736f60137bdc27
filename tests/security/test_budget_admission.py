"""A key holder cannot slip a prompt past their token budget: the hold counts every byte the prompt
sends (tool calls and their arguments, tool definitions, response_format schemas, images by their
detail), not only message text, and at the dearest deployment its route may fall back to. Sent as an attacker sends them: raw HTTP to a gateway with billing,
a worker and PostgreSQL behind it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from lobe.billing.admin import admin_session
from lobe.billing.plans import Override
from lobe.billing.service import BillingService
from lobe.chat_worker.deployments import Deployment, ModelCatalog, RoutedModel, with_builtin
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.token_ceiling import prompt_token_ceiling

from ..e2e.conftest import API_KEY, billing_settings, start_gateway, start_worker

TOKEN_LIMIT = 50_000
# 150 KB: under the limit at the old estimate's 4 bytes a token (37,500), past it as bytes.
PAYLOAD = "x" * 150_000
SCHEMA = {"type": "object", "description": PAYLOAD, "properties": {"a": {"type": "string"}}}


def ask(**extra: Any) -> dict[str, Any]:
    return {"model": "mock", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16, **extra}


def with_tool_call(arguments: str) -> dict[str, Any]:
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": arguments}}
    return {
        "model": "mock",
        "max_tokens": 16,
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
        ],
    }


def with_images(count: int, detail: str | None) -> dict[str, Any]:
    image: dict[str, Any] = {"url": "https://example.invalid/cat.png"}
    if detail is not None:
        image["detail"] = detail
    parts = [{"type": "image_url", "image_url": image} for _ in range(count)]
    return {"model": "mock", "max_tokens": 16, "messages": [{"role": "user", "content": parts}]}


@pytest.fixture
async def budgeted_gateway(nats_url: str, billing_db: str) -> AsyncIterator[str]:
    """A gateway with budget admission, a worker, billing; alice may use TOKEN_LIMIT tokens."""
    async with BillingService(billing_settings(nats_url, billing_db)) as billing:
        assert billing.admin is not None
        await billing.admin.create_user("alice", plan="basic")
        async with admin_session(billing_db, nats_url) as admin:
            await admin.set_limits("alice", Override(tokens=TOKEN_LIMIT))
        worker = await start_worker(nats_url)
        runner, base_url = await start_gateway(nats_url, billing_enabled=True, billing_timeout_s=5)
        try:
            yield base_url
        finally:
            await runner.cleanup()
            await worker.stop()


async def post(base_url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base_url}/v1/chat/completions", json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(with_tool_call("x" * 395_000), id="395 KB tool-call argument"),
        pytest.param(with_tool_call(PAYLOAD), id="150 KB tool-call argument"),
        pytest.param(
            ask(tools=[{"type": "function", "function": {"name": "f", "parameters": SCHEMA}}]),
            id="150 KB tool definition",
        ),
        pytest.param(
            ask(response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": SCHEMA}}),
            id="150 KB response_format schema",
        ),
        pytest.param(with_images(32, "high"), id="32 high-detail images"),
        pytest.param(with_images(32, None), id="32 images of unstated detail"),
    ],
)
async def test_a_prompt_past_the_token_limit_is_refused_whatever_part_carries_it(
    budgeted_gateway: str, body: dict[str, Any]
) -> None:
    status, answer = await post(budgeted_gateway, body)
    assert status == 429, answer
    assert answer["error"]["code"] == "insufficient_quota"
    assert "tokens limit" in answer["error"]["message"]


async def test_the_same_shapes_within_the_limit_are_answered(budgeted_gateway: str) -> None:
    # The bound is not a blanket refusal: small tool calls, tools, schemas and low-detail images pass.
    small = {"type": "object", "properties": {"a": {"type": "string"}}}
    for body in (
        with_tool_call('{"q": "weather"}'),
        ask(tools=[{"type": "function", "function": {"name": "f", "parameters": small}}]),
        ask(response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": small}}),
        with_images(32, "low"),
    ):
        status, answer = await post(budgeted_gateway, body)
        assert status == 200, answer


# `gpt-4.1-mini` (priced 0.40 and 1.60 USD per million tokens) is served by the mock (1 and 2) and
# falls back to `claude-opus-4` (15 and 75). A limit twice the mock's worst case covers the first
# two prices, not the fallback's.
ROUTES = ModelCatalog(
    models=[
        RoutedModel(
            name="gpt-4.1-mini",
            deployments=[Deployment(name="mini-a", provider="mock", model="mock")],
            fallbacks=["claude-opus-4"],
        ),
        RoutedModel(
            name="claude-opus-4",
            deployments=[Deployment(name="opus-a", provider="mock", model="claude-opus-4")],
        ),
    ]
)


async def test_a_hold_is_priced_at_the_dearest_deployment_the_route_may_fall_back_to(
    nats_url: str, billing_db: str
) -> None:
    body = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    prompt = prompt_token_ceiling(ChatCompletionRequest.model_validate(body))
    own_price = (Decimal(prompt) * 1 + 16 * 2) / 1_000_000
    worker = await start_worker(nats_url, with_builtin(ROUTES))  # routes are the workers' to tell
    try:
        async with BillingService(billing_settings(nats_url, billing_db)) as billing:
            assert billing.admin is not None
            await billing.admin.create_user("alice", plan="basic")
            async with admin_session(billing_db, nats_url) as admin:
                await admin.set_limits("alice", Override(cost_usd=own_price * 2))
            runner, base_url = await start_gateway(nats_url, billing_enabled=True, billing_timeout_s=5)
            try:
                status, answer = await post(base_url, body)
                assert status == 429, answer
                assert "cost limit" in answer["error"]["message"]
                # The same prompt to a model with no dearer fallback fits the same limit.
                status, answer = await post(base_url, {**body, "model": "mock"})
                assert status == 200, answer
            finally:
                await runner.cleanup()
    finally:
        await worker.stop()
