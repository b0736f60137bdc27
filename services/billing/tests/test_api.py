"""Usage API over HTTP: key auth, isolation between users, admin operations, suggestions."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from lobe.billing.service import BillingService

from .support import ADMIN_TOKEN, fetchval, publish_usage, usage_event, wait_for_ledger

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
OPENAPI = Path(__file__).resolve().parents[3] / "docs" / "openapi" / "billing.json"


async def _setup_user(http: aiohttp.ClientSession, base: str, user: str, plan: str = "free") -> str:
    async with http.post(f"{base}/v1/admin/users", json={"id": user, "plan": plan}, headers=ADMIN) as r:
        assert r.status == 201
    async with http.post(f"{base}/v1/admin/users/{user}/keys", json={"name": "t"}, headers=ADMIN) as r:
        assert r.status == 201
        return str((await r.json())["key"])


async def _get(http: aiohttp.ClientSession, url: str, key: str) -> tuple[int, Any]:
    async with http.get(url, headers={"Authorization": f"Bearer {key}"}) as r:
        return r.status, await r.json()


async def test_each_user_sees_only_their_own_usage(
    billing: BillingService, nats_url: str, billing_db: str
) -> None:
    base = f"http://127.0.0.1:{billing.ops_port}"
    async with aiohttp.ClientSession() as http:
        alice = await _setup_user(http, base, "alice")
        bob = await _setup_user(http, base, "bob")
        await publish_usage(
            nats_url,
            [
                usage_event("a1", user_id="alice"),
                usage_event("a2", user_id="alice", model="gpt-4o", provider="openai"),
                usage_event("b1", user_id="bob"),
            ],
        )
        await wait_for_ledger(billing_db, 3)
        status, mine = await _get(http, f"{base}/v1/usage", alice)
        assert status == 200
        assert mine["user_id"] == "alice"
        assert mine["totals"]["requests"] == 2
        assert {(b["provider"], b["model"]) for b in mine["breakdown"]} == {
            ("mock", "mock"),
            ("openai", "gpt-4o"),
        }
        status, theirs = await _get(
            http, f"{base}/v1/usage?user_id=alice", bob
        )  # a user id in the query is ignored
        assert theirs["user_id"] == "bob"
        assert theirs["totals"]["requests"] == 1


async def test_the_report_totals_by_provider_and_by_model_beside_the_pairs_as_documented(
    billing: BillingService, nats_url: str, billing_db: str
) -> None:
    base = f"http://127.0.0.1:{billing.ops_port}"
    async with aiohttp.ClientSession() as http:
        key = await _setup_user(http, base, "olga")
        await publish_usage(
            nats_url,
            [
                usage_event(
                    "o1", user_id="olga", model="gpt-4o", provider="openai", prompt=100, completion=10
                ),
                usage_event(
                    "o2", user_id="olga", model="gpt-4o", provider="openai", prompt=200, completion=20
                ),
                usage_event(
                    "o3", user_id="olga", model="gpt-4o", provider="azure", prompt=300, completion=30
                ),
                usage_event(
                    "o4", user_id="olga", model="gpt-4o-mini", provider="openai", prompt=400, completion=40
                ),
            ],
        )
        await wait_for_ledger(billing_db, 4)
        status, report = await _get(http, f"{base}/v1/usage", key)
    assert status == 200
    pairs = {(b["provider"], b["model"]): b for b in report["breakdown"]}
    assert set(pairs) == {("openai", "gpt-4o"), ("azure", "gpt-4o"), ("openai", "gpt-4o-mini")}

    def summed(*keys: tuple[str, str]) -> dict[str, Any]:
        chosen = [pairs[k] for k in keys]
        return {
            "tokens": sum(b["prompt_tokens"] + b["completion_tokens"] for b in chosen),
            "cost": format(sum(Decimal(b["cost_usd"]) for b in chosen).normalize(), "f"),
            "requests": sum(b["requests"] for b in chosen),
        }

    assert report["byProvider"] == {
        "azure": summed(("azure", "gpt-4o")),
        "openai": summed(("openai", "gpt-4o"), ("openai", "gpt-4o-mini")),
    }
    assert report["byModel"] == {
        "gpt-4o": summed(("openai", "gpt-4o"), ("azure", "gpt-4o")),
        "gpt-4o-mini": summed(("openai", "gpt-4o-mini")),
    }
    assert report["byModel"]["gpt-4o"]["tokens"] == 660
    # The committed OpenAPI document describes exactly what is answered.
    schemas = json.loads(OPENAPI.read_text())["components"]["schemas"]
    assert set(report) == set(schemas["UsageReport"]["properties"])
    assert set(report["byModel"]["gpt-4o"]) == set(schemas["GroupTotals"]["properties"])


async def test_unknown_and_revoked_keys_get_401(billing: BillingService) -> None:
    base = f"http://127.0.0.1:{billing.ops_port}"
    async with aiohttp.ClientSession() as http:
        key = await _setup_user(http, base, "carol")
        assert (await _get(http, f"{base}/v1/usage", key))[0] == 200
        assert (await _get(http, f"{base}/v1/usage", "lobe-sk-nope"))[0] == 401
        async with http.get(f"{base}/v1/admin/users") as r:  # the admin API's user search: its token only
            assert r.status == 401
        key_id = await fetchval(billing.settings.database_url.get_secret_value(), "SELECT id FROM api_keys")
        async with http.delete(f"{base}/v1/admin/keys/{key_id}", headers=ADMIN) as r:
            assert r.status == 200
        status, body = await _get(http, f"{base}/v1/usage", key)
        assert status == 401
        assert body["error"]["code"] == "invalid_api_key"


async def test_admin_calls_need_the_admin_token(billing: BillingService) -> None:
    base = f"http://127.0.0.1:{billing.ops_port}"
    async with aiohttp.ClientSession() as http:
        key = await _setup_user(http, base, "dave")
        async with http.post(
            f"{base}/v1/admin/users", json={"id": "eve"}, headers={"Authorization": f"Bearer {key}"}
        ) as r:
            assert r.status == 401
        async with http.post(
            f"{base}/v1/admin/users", json={"id": "eve", "plan": "gold"}, headers=ADMIN
        ) as r:
            assert r.status == 400
            assert (await r.json())["error"]["param"] == "plan"


async def test_limits_reflect_plan_override_and_usage(
    billing: BillingService, nats_url: str, billing_db: str
) -> None:
    base = f"http://127.0.0.1:{billing.ops_port}"
    async with aiohttp.ClientSession() as http:
        key = await _setup_user(http, base, "frank", plan="basic")
        async with http.put(f"{base}/v1/admin/users/frank/limits", json={"requests": 1}, headers=ADMIN) as r:
            assert r.status == 200
        await publish_usage(nats_url, [usage_event("f1", user_id="frank")])
        await wait_for_ledger(billing_db, 1)
        status, limits = await _get(http, f"{base}/v1/usage/limits", key)
        assert status == 200
        assert limits["plan"] == "basic"
        assert limits["limits"]["requests"] == {"used": 1, "limit": 1, "remaining": 0, "exceeded": True}
        assert limits["limits"]["cost_usd"]["limit"] == "10"
        status, bad = await _get(http, f"{base}/v1/usage?period=2026-13", key)
        assert status == 400
        assert bad["error"]["param"] == "period"


async def test_suggestions_of_every_kind_come_largest_savings_first(
    billing: BillingService, nats_url: str, billing_db: str
) -> None:
    base = f"http://127.0.0.1:{billing.ops_port}"
    async with aiohttp.ClientSession() as http:
        key = await _setup_user(http, base, "gina")
        events = [
            usage_event(f"g{i}", user_id="gina", provider="openai", model="gpt-4", prompt=300, completion=80)
            for i in range(30)
        ]
        events += [
            usage_event(
                f"h{i}", user_id="gina", provider="openai", model="gpt-4", prompt=5000, completion=900
            )
            for i in range(10)
        ]
        events += [
            usage_event(
                f"c{i}", user_id="gina", provider="openai", model="gpt-4o", prompt=8000, completion=10
            )
            for i in range(5)
        ]
        await publish_usage(nats_url, list(events))
        await wait_for_ledger(billing_db, 45)
        status, body = await _get(http, f"{base}/v1/usage/suggestions", key)
        usage = (await _get(http, f"{base}/v1/usage", key))[1]
    assert status == 200
    kinds = {(s["type"], s.get("model")): s for s in body["data"]}
    # gina used gpt-4o, which costs less than gpt-4 for gpt-4's tokens: LobeChat's model switch,
    # and no cheaper_model (one model to move to per model).
    assert kinds[("model_switch", None)]["description"] == "Switch from gpt-4 to gpt-4o for simple tasks"
    assert ("cheaper_model", "gpt-4") not in kinds
    assert kinds[("small_requests", "gpt-4")]["share"] == 0.75
    assert kinds[("small_requests", "gpt-4")]["suggested_model"] == "gpt-4o-mini"
    # 45 requests x 0.3 > 10: response caching, at 30 % of the period's cost.
    caching = kinds[("implement_caching", None)]["potentialSavings"]
    assert Decimal(caching) == Decimal(usage["totals"]["cost_usd"]) * Decimal("0.3")
    # Long uncached prompts on a model with a cached rate; gpt-4 has none, so no prompt caching advice.
    assert ("prompt_caching", "gpt-4o") in kinds
    assert ("prompt_caching", "gpt-4") not in kinds
    savings = [Decimal(s["potentialSavings"]) for s in body["data"]]
    assert savings == sorted(savings, reverse=True)
