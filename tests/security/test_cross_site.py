"""A signed-in browser on a hostile page: its session cookie goes with every request the page
makes to the gateway, so the page can send a form or a `fetch` with `no-cors` (text/plain, no
preflight) and spend the user's budget, or an admin's powers. Each attack is sent here as the
browser would send it (raw aiohttp, exact headers) against a real gateway on a real NATS with
Redis sessions: a 403 in OpenAI's format, and not one message on the bus (every subject, `>`,
watched: no key lookup, no budget hold, no chat request, no cache invalidation). The same request
from the gateway's own page, an allowed origin, or with a bearer token is not refused."""

from __future__ import annotations

import json

import pytest

from lobe.shared.events.billing import BUDGET_RESERVE

from ..e2e.conftest import API_KEY
from .conftest import ALLOWED, CHAT, Browser

HOSTILE = "https://evil.example"


def cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"lobe_session={token}"}


def assert_cross_site_refusal(status: int, body: dict[str, object]) -> None:
    assert status == 403, body
    assert body == {
        "error": {
            "message": body["error"]["message"],  # type: ignore[index]
            "type": "permission_error",
            "param": None,
            "code": "cross_site_request",
        }
    }


async def assert_admitted_after(browser: Browser, refused_so_far: int = 0) -> None:
    """The gateway's own page, next: its hold request is on the bus, and it is the only one. The
    gateway publishes in order on one connection, so an attack's messages would have come first."""
    own = {**cookie(browser.user), "Origin": browser.gateway.url, "Content-Type": "application/json"}
    status, body = await browser.send("POST", CHAT, own)
    assert status == 503, body  # admitted, then no billing answered the hold (closed fail mode)
    await browser.bus.wait_for(BUDGET_RESERVE)
    assert browser.bus.subjects[0] == BUDGET_RESERVE, browser.bus.subjects
    assert browser.bus.subjects.count(BUDGET_RESERVE) == 1


@pytest.mark.parametrize(
    "headers",
    [
        # An HTML form posted from another site: text/plain, the hostile Origin.
        {"Origin": HOSTILE, "Content-Type": "text/plain"},
        # fetch(..., {mode: "no-cors", credentials: "include"}): same, no preflight.
        {"Origin": HOSTILE, "Content-Type": "text/plain;charset=UTF-8", "Sec-Fetch-Site": "cross-site"},
        # A JSON body from another origin (a preflight would have been refused; sent anyway).
        {"Origin": HOSTILE, "Content-Type": "application/json"},
        # A sandboxed iframe or a redirect: Origin null.
        {"Origin": "null", "Content-Type": "application/json"},
        # No Origin at all, and the browser says it came from another site.
        {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
        # Our own page, but as a form would send it: not JSON.
        {"Origin": "{own}", "Content-Type": "application/x-www-form-urlencoded"},
        # A look-alike of an allowed origin.
        {"Origin": ALLOWED + ".evil.example", "Content-Type": "application/json"},
    ],
    ids=["form", "no-cors-fetch", "json-other-origin", "null-origin", "no-origin", "own-form", "look-alike"],
)
async def test_a_hostile_page_cannot_spend_a_signed_in_users_budget(
    browser: Browser, headers: dict[str, str]
) -> None:
    headers = {k: v.replace("{own}", browser.gateway.url) for k, v in headers.items()}
    status, body = await browser.send("POST", CHAT, {**cookie(browser.user), **headers})
    assert_cross_site_refusal(status, body)
    await assert_admitted_after(browser)


async def test_a_hostile_page_cannot_use_an_admins_session(browser: Browser) -> None:
    form = {**cookie(browser.admin), "Origin": HOSTILE, "Content-Type": "text/plain"}
    attacks = [
        ("POST", "/v1/admin/cache/invalidate", "{}"),  # drop every cached answer
        ("DELETE", "/v1/admin/users/usr_victim/sessions", ""),  # sign a user out
        ("POST", "/v1/admin/users", json.dumps({"id": "usr_attacker", "plan": "enterprise"})),
        ("POST", "/auth/logout", ""),  # sign the admin out
    ]
    for method, path, data in attacks:
        assert_cross_site_refusal(*await browser.send(method, path, form, data))
    # The admin's session still works (it was not signed out) from a safe method.
    status, body = await browser.send(
        "GET", "/auth/session", {**cookie(browser.admin), "Origin": HOSTILE}, ""
    )
    assert (status, body["role"]) == (200, "admin")
    await assert_admitted_after(browser)


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "{own}", "Content-Type": "application/json"},
        {"Origin": "{own}", "Content-Type": "application/json; charset=utf-8"},
        {"Origin": ALLOWED, "Content-Type": "application/json"},
        {"Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"},
    ],
    ids=["own-origin", "own-origin-charset", "allowed-origin", "same-origin-no-origin-header"],
)
async def test_the_gateways_own_pages_and_allowed_origins_are_admitted(
    browser: Browser, headers: dict[str, str]
) -> None:
    headers = {k: v.replace("{own}", browser.gateway.url) for k, v in headers.items()}
    status, body = await browser.send("POST", CHAT, {**cookie(browser.user), **headers})
    assert status == 503, body  # past authentication; no billing answered the hold
    await browser.bus.wait_for(BUDGET_RESERVE)


async def test_bearer_credentials_are_not_bound_to_an_origin(browser: Browser) -> None:
    bearer = {"Authorization": f"Bearer {API_KEY}", "Origin": HOSTILE, "Content-Type": "application/json"}
    status, body = await browser.send("POST", CHAT, bearer)
    assert status == 503, body  # admitted: a script that holds the key may send it from anywhere
    await browser.bus.wait_for(BUDGET_RESERVE)


async def test_over_https_the_session_cookie_is_host_prefixed(browser: Browser) -> None:
    """Behind a TLS proxy (X-Forwarded-Proto) the cookie read is `__Host-lobe_session` only: a
    plain `lobe_session` planted by a sibling subdomain or an HTTP page is no session."""
    https = {"X-Forwarded-Proto": "https", "Origin": browser.gateway.url.replace("http:", "https:")}
    status, body = await browser.send("GET", "/auth/session", {**https, **cookie(browser.user)}, "")
    assert (status, body["error"]["code"]) == (401, "missing_api_key")  # type: ignore[index]
    host_cookie = {"Cookie": f"__Host-lobe_session={browser.user}"}
    status, body = await browser.send("GET", "/auth/session", {**https, **host_cookie}, "")
    assert (status, body["id"]) == (200, "usr_victim")
    # Signing out clears that cookie, with the attributes a `__Host-` cookie must have.
    async with browser.http.post(
        browser.gateway.url + "/auth/logout",
        headers={**https, **host_cookie, "Content-Type": "application/json"},
    ) as r:
        assert r.status == 200, await r.text()
        cleared = r.cookies["__Host-lobe_session"]
    assert (cleared.value, cleared["path"], cleared["secure"], cleared["max-age"]) == ("", "/", True, "0")
