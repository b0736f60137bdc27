"""LobeChat's cost suggestions, `model_switch` and `implement_caching`: names, fields and triggers,
checked against a ledger built for them, under a price table of round numbers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lobe.billing.service import BillingService

from .support import ADMIN_TOKEN, make_settings, publish_usage, usage_event, wait_for_ledger

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
MILLION = Decimal(1_000_000)
# USD per million tokens: (input, cached input, output). Models the user never used stay unnamed.
RATES = {
    "large": (Decimal(20), Decimal(2), Decimal(40)),
    "medium": (Decimal(5), Decimal(5), Decimal(10)),
    "small": (Decimal(1), Decimal(1), Decimal(2)),
    "tiny": (Decimal("0.1"), Decimal("0.1"), Decimal("0.2")),
}
PRICES = """
default: {input: 15.00, output: 75.00}
models:
  - {provider: acme, model: large, prices: [{effective_from: 2024-01-01, input: 20, cached_input: 2, output: 40}]}
  - {provider: acme, model: medium, prices: [{effective_from: 2024-01-01, input: 5, output: 10}]}
  - {provider: acme, model: small, prices: [{effective_from: 2024-01-01, input: 1, output: 2}]}
  - {provider: acme, model: tiny, prices: [{effective_from: 2024-01-01, input: 0.1, output: 0.2}]}
"""


def cost(model: str, prompt: int, completion: int, cached: int = 0) -> Decimal:
    """What the table above says these tokens cost on `model` (prompt includes cached)."""
    rate_in, rate_cached, rate_out = RATES[model]
    return ((prompt - cached) * rate_in + cached * rate_cached + completion * rate_out) / MILLION


def usd(amount: Decimal) -> str:
    return format(amount.normalize(), "f")


@pytest.fixture
async def priced(nats_url: str, billing_db: str, tmp_path: Path) -> AsyncIterator[BillingService]:
    prices = tmp_path / "prices.yaml"
    prices.write_text(PRICES)
    async with BillingService(make_settings(nats_url, billing_db, prices_file=prices)) as svc:
        yield svc


async def _suggestions(http: aiohttp.ClientSession, base: str, user: str) -> list[dict[str, Any]]:
    async with http.post(f"{base}/v1/admin/users", json={"id": user}, headers=ADMIN) as r:
        assert r.status in (200, 201)
    async with http.post(f"{base}/v1/admin/users/{user}/keys", json={}, headers=ADMIN) as r:
        key = (await r.json())["key"]
    async with http.get(f"{base}/v1/usage/suggestions", headers={"Authorization": f"Bearer {key}"}) as r:
        assert r.status == 200
        data: list[dict[str, Any]] = (await r.json())["data"]
        return data


async def test_model_switch_names_the_cheapest_model_the_user_already_used_and_reprices_the_tokens(
    priced: BillingService, nats_url: str, billing_db: str
) -> None:
    def events(user: str, model: str, n: int, prompt: int, completion: int, cached: int = 0) -> list[Any]:
        return [
            usage_event(f"{user}-{model}-{i}", user, model, "acme", prompt, completion, cached)
            for i in range(n)
        ]

    # ann used large, medium and small (tiny, cheaper still, she never used).
    ann = events("ann", "large", 10, 1000, 500, cached=200) + events("ann", "medium", 5, 400, 100)
    ann += events("ann", "small", 2, 100, 50)
    # cy used large and medium for chats, and tiny for embeddings only: her switch is to medium,
    # neither to a model she never used nor to one that served her another kind of request.
    cy = events("cy", "large", 1, 1000, 500) + events("cy", "medium", 1, 10, 10)
    cy += [e.model_copy(update={"kind": "embedding"}) for e in events("cy", "tiny", 1, 10, 0)]
    await publish_usage(nats_url, [*ann, *cy])
    await wait_for_ledger(billing_db, len(ann) + len(cy))
    base = f"http://127.0.0.1:{priced.ops_port}"
    async with aiohttp.ClientSession() as http:
        anns, cys = await _suggestions(http, base, "ann"), await _suggestions(http, base, "cy")

    # large's tokens, 10 x (1,000 prompt of which 200 cached, 500 out), cost what they cost on large
    # minus the same tokens on small (no cached rate there: cached prompt at the input price).
    large_savings = cost("large", 10_000, 5_000, cached=2_000) - cost("small", 10_000, 5_000)
    medium_savings = cost("medium", 2_000, 500) - cost("small", 2_000, 500)
    assert anns == [
        {
            "type": "model_switch",
            "description": "Switch from large to small for simple tasks",
            "potentialSavings": usd(large_savings),
        },
        {
            "type": "model_switch",
            "description": "Switch from medium to small for simple tasks",
            "potentialSavings": usd(medium_savings),
        },
    ]  # small: nothing she used is cheaper; 17 requests: no caching advice (17 x 0.3 <= 10)
    assert cys == [
        {
            "type": "model_switch",
            "description": "Switch from large to medium for simple tasks",
            "potentialSavings": usd(cost("large", 1000, 500) - cost("medium", 1000, 500)),
        }
    ]


async def test_implement_caching_appears_once_requests_times_0_3_passes_10(
    priced: BillingService, nats_url: str, billing_db: str
) -> None:
    """33 requests: 9.9, no advice; the 34th: 10.2 > 10, and the savings are 30 % of the period's cost."""
    base = f"http://127.0.0.1:{priced.ops_port}"
    one = [usage_event(f"bea{i}", "bea", "medium", "acme", 300, 60) for i in range(34)]
    async with aiohttp.ClientSession() as http:
        await publish_usage(nats_url, one[:33])
        await wait_for_ledger(billing_db, 33)
        assert await _suggestions(http, base, "bea") == []
        await publish_usage(nats_url, one[33:])
        await wait_for_ledger(billing_db, 34)
        [caching] = await _suggestions(http, base, "bea")
    assert caching == {
        "type": "implement_caching",
        "description": "Implement response caching for repeated queries",
        "potentialSavings": usd(34 * cost("medium", 300, 60) * Decimal("0.3")),
    }
