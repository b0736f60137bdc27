"""What the public port exposes: the OpenAI API, sign-in and admin routes for admin sessions;
never /metrics, health internals or billing's API, and billing's admin token is no credential
there. Billing's usage and admin API live on its ops port, which no Ingress routes to (the Helm
side: tests/deploy/test_helm_environments.py)."""

from __future__ import annotations

import aiohttp
import pytest

from .conftest import RunningSuite


async def answer(url: str, method: str = "GET", token: str | None = None) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.request(method, url, headers=headers, json={}) as r:
        return r.status, await r.json(content_type=None)


@pytest.mark.parametrize("path", ["/metrics", "/health/ready", "/health/live"])
async def test_the_public_port_serves_no_ops_route_and_not_billings_api(
    running_suite: RunningSuite, path: str
) -> None:
    status, body = await answer(running_suite.gateway + path, token=running_suite.api_key)
    assert status == 404
    assert set(body) == {"error"}


@pytest.mark.parametrize("path", ["/v1/usage", "/v1/usage/limits"])
async def test_the_gateways_usage_reports_are_the_callers_own_whoever_the_query_names(
    running_suite: RunningSuite, path: str
) -> None:
    """/v1/usage at the gateway is not billing's API passed through: the user is the credential's."""
    status, own = await answer(running_suite.gateway + path, token=running_suite.api_key)
    assert status == 200, own
    status, asked = await answer(
        running_suite.gateway + path + "?user_id=someone-else", token=running_suite.api_key
    )
    assert status == 200
    assert asked["user_id"] == own["user_id"] != "someone-else"
    status, body = await answer(running_suite.gateway + path)
    assert status == 401
    assert set(body) == {"error"}


async def test_billings_admin_token_opens_nothing_on_the_public_port(running_suite: RunningSuite) -> None:
    for path in ("/v1/admin/users", "/v1/admin/users/dev-user/keys"):
        status, body = await answer(running_suite.gateway + path, "POST", running_suite.admin_token)
        assert status == 401, body
    # An API key, even an admin's, is no admin session either.
    status, _ = await answer(running_suite.gateway + "/v1/admin/users", "POST", running_suite.api_key)
    assert status == 401


async def test_metrics_and_the_admin_api_answer_on_the_internal_ops_ports_only(
    running_suite: RunningSuite,
) -> None:
    ports = running_suite.dev.ports
    for var in ("GATEWAY_OPS_PORT", "BILLING_OPS_PORT"):
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{ports[var]}/metrics") as r:
            assert r.status == 200
            assert "# TYPE" in await r.text()
    status, _ = await answer(running_suite.billing + "/v1/admin/users", "POST", "not-the-token")
    assert status == 401
