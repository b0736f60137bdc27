"""The console's pages. Each reads what it shows the way the API answers it (the caller's keys
over the bus, reports from billing) and renders it; forms are sent by console.js to the API."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from lobe.gateway.account.keys import own_keys
from lobe.gateway.account.usage import billing_get, user_report
from lobe.gateway.auth.assembly import AUTH
from lobe.gateway.console.chart import day_chart
from lobe.gateway.console.page import action_form, document, h, signed_in, table
from lobe.shared.openai_errors import ApiError


def _field(
    id_: str, label: str, kind: str = "text", value: Any = "", name: str | None = None, **attrs: str
) -> str:
    """A labelled input; `name` (the JSON field console.js sends) defaults to the id."""
    extra = "".join(f' {k.replace("_", "-")}="{h(v)}"' for k, v in attrs.items())
    return (
        f'<label for="{h(id_)}">{h(label)}</label>'
        f'<input id="{h(id_)}" name="{h(name or id_)}" type="{h(kind)}" value="{h(value)}"{extra}>'
    )


def _role_select(user_id: str, role: str) -> str:
    options = "".join(
        f'<option value="{r}"{" selected" if r == role else ""}>{r}</option>' for r in ("user", "admin")
    )
    return f'<label for="role-{h(user_id)}">Role</label><select id="role-{h(user_id)}" name="role">{options}</select>'


def _when(value: Any) -> str:
    return h(str(value)[:19].replace("T", " ")) if value else "never"


async def sign_in_page(request: web.Request) -> web.Response:
    sign_in = request.app[AUTH].sign_in
    found = sign_in.providers if sign_in else {}
    links = "".join(
        f'<li><a class="button" href="/auth/login/{h(name)}?return_to=/console">'
        f"Sign in with {h(found[name].display_name)}</a></li>"
        for name in sorted(found)
    )
    body = f'<ul class="providers">{links}</ul>' if links else "<p>No sign-in provider is configured.</p>"
    return document("Sign in", body)


async def home(request: web.Request) -> web.Response:
    await signed_in(request)
    raise web.HTTPSeeOther("/console/keys")


async def keys_page(request: web.Request) -> web.Response:
    session = await signed_in(request)
    listed = await own_keys(request, session.sub)
    rows = [
        (
            h(key.name or "—"),
            f"<code>{h(key.prefix)}…</code>",
            _when(key.created_at),
            _when(key.last_used_at),
            "revoked " + _when(key.revoked_at)
            if key.revoked_at
            else action_form("DELETE", f"/v1/keys/{quote(key.id)}", "", f"Revoke {key.name or key.prefix}"),
        )
        for key in listed.keys
    ]
    live = sum(1 for key in listed.keys if key.revoked_at is None)
    cap = "no limit" if listed.max_api_keys is None else f"{live} of {listed.max_api_keys} live keys"
    create = action_form(
        "POST",
        "/v1/keys",
        _field("key-name", "Name", name="name", maxlength="100"),
        "Create key",
        shows="key",
    )
    body = (
        f"<p>Your plan allows: {h(cap)}.</p><h2>New key</h2>{create}"
        '<div id="new-key" class="secret" hidden><p role="status">Copy this key now: it is not shown again.</p>'
        '<code id="new-key-value"></code> <button type="button" id="copy-key">Copy</button></div>'
        + table(
            "Your API keys", ("Name", "Prefix", "Created", "Last used", ""), rows, "You have no API keys yet."
        )
    )
    return document("API keys", body, session)


def _limits(limits: dict[str, Any]) -> str:
    rows = [
        (h(name), h(item["used"]), h(item["limit"] if item["limit"] is not None else "unlimited"),
         h(item["remaining"] if item["remaining"] is not None else "—"), "exceeded" if item["exceeded"] else "ok")
        for name, item in limits["limits"].items()
    ]  # fmt: skip
    return f'<p id="plan">Plan: <strong>{h(limits["plan"])}</strong></p>' + table(
        f"Limits in {limits['period']}", ("Limit", "Used", "Allowed", "Left", "Status"), rows, ""
    )


def _grouped(caption: str, groups: dict[str, Any]) -> str:
    rows = [(h(name), h(g["requests"]), h(g["tokens"]), h(g["cost"])) for name, g in groups.items()]
    return table(
        caption, (caption.split()[-1].title(), "Requests", "Tokens", "Cost (USD)"), rows, "None yet."
    )


async def _report(request: web.Request, user_id: str, report: str) -> Any:
    status, body = await user_report(request, user_id, report)
    if status != 200:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        raise ApiError(status, error.get("message", "Billing refused the report."), error.get("code"))
    return body


async def usage_page(request: web.Request) -> web.Response:
    session = await signed_in(request)
    report = await _report(request, session.sub, "usage")
    limits = await _report(request, session.sub, "usage/limits")
    tips = await _report(request, session.sub, "usage/suggestions")
    periods = "".join(
        f'<li><a href="/console/usage?period={h(p["period"])}">{h(p["period"])}</a>: '
        f"{h(p['requests'])} requests, {h(p['tokens'])} tokens, ${h(p['cost_usd'])}</li>"
        for p in report["periods"]
    )
    suggestions = "".join(
        f"<li>{h(s['description'])} (saves up to ${h(s['potentialSavings'])})</li>" for s in tips["data"]
    )
    totals = report["totals"]
    body = (
        _limits(limits)
        + f'<h2>Period {h(report["period"])}</h2><p id="totals">{h(totals["requests"])} requests, '
        f"{h(totals['prompt_tokens'] + totals['completion_tokens'])} tokens, ${h(totals['cost_usd'])}</p>"
        + day_chart(report.get("days", []))
        + _grouped("Usage by provider", report["byProvider"])
        + _grouped("Usage by model", report["byModel"])
        + f"<h2>Periods</h2><ul>{periods}</ul>"
        + f"<h2>Ways to spend less</h2><ul>{suggestions or '<li>Nothing to suggest yet.</li>'}</ul>"
    )
    return document("Usage", body, session)


async def playground_page(request: web.Request) -> web.Response:
    session = await signed_in(request)
    body = (
        '<form id="playground"><label for="model">Model</label><select id="model" name="model"></select>'
        '<label for="prompt">Prompt</label><textarea id="prompt" name="prompt" rows="4" required></textarea>'
        '<button type="submit">Send</button></form>'
        '<h2>Answer</h2><output id="answer" for="prompt" aria-live="polite"></output>'
        '<p id="answer-cost" role="status"></p>'
    )
    return document("Playground", body, session)


async def admin_users_page(request: web.Request) -> web.Response:
    session = await signed_in(request, admin=True)
    wanted = request.query.get("q", "")
    status, found = await billing_get(request, "users", {"q": wanted})
    if status != 200:
        raise ApiError(status, "Billing refused the user search.", "billing_refused")
    rows = []
    for user in found["data"]:
        base = f"/v1/admin/users/{quote(user['id'], safe='')}"
        rows.append(
            (
                f'<a href="/console/admin/users/{h(quote(user["id"], safe=""))}">{h(user["id"])}</a>',
                h(user["email"]),
                action_form("PUT", base + "/role", _role_select(user["id"], user["role"]), "Set role"),
                action_form(
                    "PUT",
                    base + "/plan",
                    _field(f"plan-{user['id']}", "Plan", value=user["plan"], name="plan"),
                    "Set plan",
                ),
                action_form("POST", base + "/reset-usage", "", "Reset usage"),
            )
        )
    search = (
        '<form method="get" action="/console/admin/users" role="search">'
        + _field("q", "Find users by id or e-mail", "search", wanted)
        + '<button type="submit">Search</button></form>'
    )
    body = search + table("Users", ("User", "E-mail", "Role", "Plan", "Usage"), rows, "No user matches.")
    return document("Users", body, session)


async def admin_user_page(request: web.Request) -> web.Response:
    session = await signed_in(request, admin=True)
    user_id = request.match_info["user_id"]
    path = f"users/{quote(user_id, safe='')}"
    status, keys = await billing_get(request, path + "/keys")
    if status != 200:
        raise ApiError(status, f"No user {user_id!r}.", "not_found")
    limits = await _report(request, user_id, "usage/limits")
    rows = [
        (h(k["name"] or "—"), f"<code>{h(k['prefix'])}…</code>", _when(k["created_at"]), _when(k["last_used_at"]),
         "revoked " + _when(k["revoked_at"]) if k["revoked_at"]
         else action_form("DELETE", f"/v1/admin/keys/{quote(k['id'])}", "", f"Revoke {k['prefix']}"))
        for k in keys["data"]
    ]  # fmt: skip
    override = action_form(
        "PUT",
        f"/v1/admin/{path}/limits",
        _field("tokens", "Tokens", "number", min="0", data_type="integer")
        + _field("cost_usd", "Cost (USD)", "text", inputmode="decimal")
        + _field("requests", "Requests", "number", min="0", data_type="integer"),
        "Override limits",
    )
    body = (
        _limits(limits)
        + f"<h2>Override limits</h2><p>Empty fields use the plan's value.</p>{override}"
        + table("Keys", ("Name", "Prefix", "Created", "Last used", ""), rows, "No keys.")
    )
    return document(f"User {user_id}", body, session)
