"""The web console in a real Chromium (Debian's `chromium`, driven by Playwright; no browser
download), against the real suite: a gateway with sign-in at the local OpenID provider, billing on
PostgreSQL, a chat worker. The tests take the screenshots docs/console.md shows.

Chromium missing fails these tests (it is in tools/system-deps.txt); they never skip.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import openai
import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, Request, async_playwright

from lobe.devtools.ports import free_port
from lobe.devtools.servers.oidc import PASSWORD, OidcProviderServer
from lobe.devtools.suite import start_billing, start_gateway
from lobe.gateway.console.page import CSP

from .conftest import start_worker
from .sign_in_support import key_set, new_key, sign_in

# The tests always take the screenshots; they replace docs/console.md's only when asked
# (`LOBE_UPDATE_SCREENSHOTS=1`), so `make test` leaves the checkout as it found it.
DOCS_SHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
SHOTS = (
    DOCS_SHOTS
    if os.environ.get("LOBE_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "lobe-console-screenshots"
)
CLIENT_ID, CLIENT_SECRET = "lobe-console", "console-client-secret-for-tests"
ADMIN_TOKEN = "console-admin-token"
MESSAGES = [{"role": "user", "content": "Hello from the console test"}]


@dataclass
class Console:
    url: str
    billing_url: str
    browser: Browser
    issuer: str  # the OpenID provider's URL
    seen: list[str] = field(default_factory=list)  # every URL a console page asked for

    async def page(self) -> Page:
        context = await self.browser.new_context(viewport={"width": 1100, "height": 800})
        page = await context.new_page()

        def record(request: Request) -> None:
            self.seen.append(request.url)

        page.on("request", record)
        return page

    async def sign_in(self, page: Page, email: str) -> None:
        """Through the console's sign-in page and the provider's own login and consent forms."""
        await page.goto(f"{self.url}/console")
        assert page.url == f"{self.url}/console/sign-in"
        await page.get_by_role("link", name="Sign in with").first.click()
        for _ in range(6):
            await page.wait_for_load_state()
            if page.url.startswith(self.url):
                break
            login = page.locator("input[name=login]")
            if await login.count():
                await login.fill(email)
                await page.locator("input[name=password]").fill(PASSWORD)
            await page.locator("button[type=submit], input[type=submit]").first.click()
        await page.wait_for_url(f"{self.url}/console/keys")

    async def admin_call(self, method: str, path: str, body: dict[str, Any]) -> Any:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.billing_url + path, json=body, headers=headers) as r,
        ):
            assert r.status < 300, await r.text()
            return await r.json()


@pytest.fixture
async def console(
    nats_url: str,
    redis_url: str,
    billing_db: str,
    make_oidc_provider: Callable[[list[dict[str, Any]]], OidcProviderServer],
) -> AsyncIterator[Console]:
    port = free_port()
    provider = make_oidc_provider(
        [
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [f"http://127.0.0.1:{port}/auth/callback/oidc"],
            }
        ]
    )
    billing = await start_billing(
        nats_url, billing_db, billing_admin_token=ADMIN_TOKEN, billing_fetch_timeout_s=0.1
    )
    worker = await start_worker(nats_url)
    gateway = await start_gateway(
        nats_url,
        port=port,
        redis_url=redis_url,
        session_keys=key_set(new_key("console")),
        oidc_discovery_url=provider.discovery_url,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        allowed_email_domains="corp.example",
        billing_admin_url=billing.url,
        billing_admin_token=ADMIN_TOKEN,
        rate_limits_enabled=False,
        cache_enabled=False,
    )
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is not installed (tools/system-deps.txt; make install)"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield Console(gateway.url, billing.url, browser, provider.url)
        await browser.close()
    await gateway.stop()
    await worker.stop()
    await billing.stop()


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    png = await page.screenshot(path=SHOTS / f"{name}.png", full_page=True)
    assert png.startswith(b"\x89PNG"), name


async def until_text(page: Page, url: str, selector: str, wanted: str, rounds: int = 40) -> None:
    """Reload until `selector` says `wanted` (billing ingests usage from JetStream in batches)."""
    for _ in range(rounds):
        await page.goto(url)
        if wanted in (await page.locator(selector).inner_text()):
            return
        await page.wait_for_timeout(250)
    raise AssertionError(f"{selector} never said {wanted!r}: {await page.locator(selector).inner_text()}")


async def test_a_user_signs_in_creates_a_key_uses_it_sees_the_usage_and_revokes_it(console: Console) -> None:
    page = await console.page()
    await console.sign_in(page, "una@corp.example")
    await shot(page, "keys-empty")
    refused = await page.goto(f"{console.url}/console/admin/users")
    assert refused is not None
    assert refused.status == 403  # not an admin
    await page.goto(f"{console.url}/console/keys")

    await page.get_by_label("Name").fill("laptop")
    await page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key-value")
    await secret.wait_for()
    key = await secret.inner_text()
    assert key.startswith("lobe-sk-")
    await shot(page, "key-created")

    client = openai.AsyncOpenAI(base_url=f"{console.url}/v1", api_key=key, max_retries=0)
    answer = await client.chat.completions.create(model="mock", messages=MESSAGES)  # type: ignore[arg-type]
    assert answer.choices[0].message.content

    await until_text(page, f"{console.url}/console/usage", "#totals", "1 requests")
    assert await page.locator("svg[role=img]").count() == 2  # cost and tokens per day
    assert await page.get_by_role("table", name="Usage by model").get_by_text("mock").count()
    await shot(page, "usage")

    await page.goto(f"{console.url}/console/keys")
    await expect_row(page, "laptop")
    await page.get_by_role("button", name="Revoke laptop").click()
    await page.wait_for_load_state()
    await page.get_by_text("revoked", exact=False).first.wait_for()
    await shot(page, "key-revoked")
    for _ in range(40):  # every gateway drops the key when billing announces the revocation
        try:
            await client.chat.completions.create(model="mock", messages=MESSAGES)  # type: ignore[arg-type]
        except openai.AuthenticationError:
            break
        await page.wait_for_timeout(100)
    else:
        raise AssertionError("the revoked key was still accepted")


async def until_signed_out(page: Page, url: str, rounds: int = 40) -> None:
    """Every gateway ends a user's sessions when it hears billing's account change (a fact on
    the bus, a moment after the admin call answered)."""
    for _ in range(rounds):
        await page.goto(f"{url}/console/keys")
        if page.url == f"{url}/console/sign-in":
            return
        await page.wait_for_timeout(100)
    raise AssertionError("the session outlived the account change")


async def expect_row(page: Page, text: str) -> None:
    assert await page.get_by_role("row").filter(has_text=text).count() == 1


async def test_the_plan_caps_the_keys_a_user_creates(console: Console) -> None:
    page = await console.page()
    await console.sign_in(page, "cap@corp.example")
    for n in range(3):  # the free plan's max_api_keys
        await page.get_by_label("Name").fill(f"k{n}")
        await page.get_by_role("button", name="Create key").click()
        await page.locator("#new-key").wait_for()
        await page.reload()
    await page.get_by_label("Name").fill("one too many")
    await page.get_by_role("button", name="Create key").click()
    await page.get_by_role("alert").wait_for()
    assert "allows 3 live API keys" in await page.get_by_role("alert").inner_text()
    assert await page.get_by_role("row").count() == 4  # the header and three keys


async def test_an_admin_changes_a_users_plan_and_the_users_limits_show_it(console: Console) -> None:
    await console.admin_call("POST", "/v1/admin/users", {"id": "usr_boss", "email": "boss@corp.example"})
    await console.admin_call("PUT", "/v1/admin/users/usr_boss/role", {"role": "admin"})
    user = await console.page()
    await console.sign_in(user, "ivy@corp.example")
    await user.goto(f"{console.url}/console/usage")
    assert "free" in await user.locator("#plan").inner_text()

    admin = await console.page()
    await console.sign_in(admin, "boss@corp.example")
    await admin.goto(f"{console.url}/console/admin/users?q=ivy")
    row = admin.get_by_role("row").filter(has_text="ivy@corp.example")
    await row.get_by_label("Plan").fill("basic")
    async with admin.expect_navigation():  # console.js reloads the page once the API said yes
        await row.get_by_role("button", name="Set plan").click()
    await admin.get_by_role("row").filter(has_text="ivy@corp.example").get_by_label("Plan").wait_for()
    assert (
        await admin.get_by_role("row").filter(has_text="ivy@corp.example").get_by_label("Plan").input_value()
        == "basic"
    )
    await shot(admin, "admin-users")
    await admin.get_by_role("link", name=await row.get_by_role("link").inner_text()).click()
    await admin.wait_for_load_state()
    await shot(admin, "admin-user")

    # A plan change ends the user's sessions (they carry the plan): signed in again, the plan is basic.
    await until_signed_out(user, console.url)
    await console.sign_in(user, "ivy@corp.example")
    await user.goto(f"{console.url}/console/usage")
    assert "basic" in await user.locator("#plan").inner_text()
    assert "2000000" in await user.get_by_role("table", name="Limits").inner_text()

    # An admin makes her an admin: signed in again, the admin pages are hers.
    await admin.goto(f"{console.url}/console/admin/users?q=ivy")
    row = admin.get_by_role("row").filter(has_text="ivy@corp.example")
    await row.get_by_label("Role").select_option("admin")
    async with admin.expect_navigation():
        await row.get_by_role("button", name="Set role").click()
    await until_signed_out(user, console.url)
    await console.sign_in(user, "ivy@corp.example")
    await user.get_by_role("link", name="Users").click()
    await user.wait_for_url(f"{console.url}/console/admin/users")


async def test_the_playground_streams_an_answer_with_its_cost(console: Console) -> None:
    page = await console.page()
    await console.sign_in(page, "pia@corp.example")
    await page.goto(f"{console.url}/console/playground")
    await page.get_by_label("Model").select_option("mock")
    await page.get_by_label("Prompt").fill("Say something")
    await page.get_by_role("button", name="Send").click()
    await page.get_by_text("completion tokens").wait_for()
    assert await page.locator("#answer").inner_text()
    await shot(page, "playground")


async def test_a_cross_site_form_post_to_a_console_action_is_refused(console: Console) -> None:
    page = await console.page()
    await console.sign_in(page, "vic@corp.example")

    async def attacker(request: web.Request) -> web.Response:
        # Same host, another port: same-site, so the browser sends the Lax session cookie along.
        form = f'<form method="post" action="{console.url}/v1/keys" enctype="text/plain"><input name="x" value="y"><button>go</button></form>'
        return web.Response(text=f"<html><body>{form}</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", attacker)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await page.goto(f"http://127.0.0.1:{port}/")
        async with page.expect_response(f"{console.url}/v1/keys") as posted:
            await page.get_by_role("button", name="go").click()
        answer = await posted.value
        assert answer.status == 403
        assert (await answer.json())["error"]["code"] == "cross_site_request"
    finally:
        await runner.cleanup()
    await page.goto(f"{console.url}/console/keys")
    assert "You have no API keys yet." in await page.content()


async def test_console_pages_send_the_csp_and_ask_no_other_origin(console: Console) -> None:
    await console.admin_call("POST", "/v1/admin/users", {"id": "usr_root", "email": "root@corp.example"})
    await console.admin_call("PUT", "/v1/admin/users/usr_root/role", {"role": "admin"})
    page = await console.page()
    await page.goto(f"{console.url}/console/sign-in")
    await shot(page, "sign-in")
    await console.sign_in(page, "root@corp.example")
    console.seen.clear()
    pages = (
        "/console/keys",
        "/console/usage",
        "/console/playground",
        "/console/admin/users",
        "/console/admin/models",
    )
    for path in pages:
        answer = await page.goto(console.url + path)
        assert answer is not None, path
        assert answer.status == 200, path
        assert answer.headers["content-security-policy"] == CSP
        await page.wait_for_load_state("networkidle")
    # The models page: the routing file's models, each deployment's breaker as the workers share it.
    mock = page.get_by_role("table", name="Model mock", exact=True)
    assert "closed" in await mock.get_by_role("row").nth(1).inner_text()
    await shot(page, "admin-models")
    origins = {f"{urlsplit(url).scheme}://{urlsplit(url).netloc}" for url in console.seen}
    assert origins == {console.url}
    # The policy is enforced, not only sent: an inline script is refused.
    with pytest.raises(Exception, match=r"Content Security Policy|Refused|CSP"):
        await page.add_script_tag(content="document.title = 'owned'")
    assert await page.title() != "owned"


async def test_a_user_cannot_revoke_another_users_key(console: Console) -> None:
    keys = []
    for email in ("ann@corp.example", "mallory@corp.example"):
        page = await console.page()
        await console.sign_in(page, email)
        await page.get_by_role("button", name="Create key").click()
        await page.locator("#new-key-value").wait_for()
        keys.append(await page.locator("#new-key-value").inner_text())
    ann, mallory = ({"Authorization": f"Bearer {key}"} for key in keys)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{console.url}/v1/keys", headers=ann) as r:
            assert r.status == 200
            (anns_key,) = (await r.json())["data"]
        async with http.delete(f"{console.url}/v1/keys/{anns_key['id']}", headers=mallory) as r:
            assert r.status == 404
            assert (await r.json())["error"]["code"] == "not_found"
        async with http.get(f"{console.url}/v1/keys", headers=ann) as r:
            assert [key["revoked_at"] for key in (await r.json())["data"]] == [None]
        async with http.delete(f"{console.url}/v1/keys/{anns_key['id']}", headers=ann) as r:
            assert r.status == 200


async def test_concurrent_key_creations_stop_exactly_at_the_plans_cap(console: Console) -> None:
    signed = await sign_in(console.url, console.issuer, "rush@corp.example")
    session = {"Authorization": f"Bearer {signed.body['access_token']}"}
    async with aiohttp.ClientSession() as http:

        async def create(n: int) -> int:
            async with http.post(f"{console.url}/v1/keys", json={"name": f"k{n}"}, headers=session) as r:
                return r.status

        statuses = await asyncio.gather(*(create(n) for n in range(8)))
        assert sorted(statuses) == [201] * 3 + [403] * 5  # the free plan's max_api_keys: 3
        async with http.get(f"{console.url}/v1/keys", headers=session) as r:
            listed = await r.json()
        assert (len(listed["data"]), listed["max_api_keys"]) == (3, 3)
