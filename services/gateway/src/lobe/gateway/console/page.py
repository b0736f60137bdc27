"""The console's page frame: layout, escaping, the security headers, who is signed in.

Text reaches HTML only through `h` (html.escape); nothing inline runs or styles (the CSP forbids
it), so a value that slips through still cannot execute.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from aiohttp import web

from lobe.gateway.auth.assembly import AUTH
from lobe.gateway.auth.session_tokens import SessionClaims
from lobe.shared.openai_errors import ApiError

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
SIGN_IN = "/console/sign-in"
NAV = (("/console/keys", "API keys"), ("/console/usage", "Usage"), ("/console/playground", "Playground"))
ADMIN_NAV = (("/console/admin/users", "Users"), ("/console/admin/models", "Models"))


def h(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


class SignInFirst(Exception):
    """No valid session: the page sends the browser to sign in."""


async def signed_in(request: web.Request, admin: bool = False) -> SessionClaims:
    try:
        session = await request.app[AUTH].auth.session(request)
    except ApiError as refused:
        raise SignInFirst from refused
    if admin and session.role != "admin":
        raise ApiError(403, "This page is for admins.", "admin_required")
    return session


def document(title: str, body: str, session: SessionClaims | None = None, status: int = 200) -> web.Response:
    nav = ""
    if session is not None:
        links = NAV + (ADMIN_NAV if session.role == "admin" else ())
        items = "".join(f'<li><a href="{h(href)}">{h(text)}</a></li>' for href, text in links)
        nav = (
            f'<nav aria-label="Console"><ul>{items}</ul>'
            f'<p class="who">{h(session.email)} ({h(session.role)}, plan {h(session.plan)})'
            ' <button type="button" id="sign-out">Sign out</button></p></nav>'
        )
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{h(title)} · Lobe console</title>"
        '<link rel="stylesheet" href="/console/static/console.css">'
        '<script src="/console/static/console.js" defer></script></head>'
        f'<body><header><a class="brand" href="/console">Lobe console</a>{nav}</header>'
        f'<main id="main"><h1>{h(title)}</h1>{body}</main></body></html>'
    )
    return web.Response(text=html, status=status, content_type="text/html", headers=HEADERS)


def table(caption: str, head: tuple[str, ...], rows: Sequence[Sequence[str]], empty: str) -> str:
    """Cells are HTML already (escaped by the caller); an empty table says `empty` under its caption,
    so two empty tables on one page still say which is which."""
    if not rows:
        return f'<p><span class="caption">{h(caption)}</span>: {h(empty)}</p>'
    ths = "".join(f'<th scope="col">{h(col)}</th>' for col in head)
    trs = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><caption>{h(caption)}</caption><thead><tr>{ths}</tr></thead><tbody>{trs}</tbody></table>"


def action_form(method: str, url: str, fields: str, submit: str, **data: str) -> str:
    """A form console.js sends as JSON to `method url` (an API route); `data-*` say what follows."""
    extra = "".join(f' data-{h(name.replace("_", "-"))}="{h(value)}"' for name, value in data.items())
    return (
        f'<form class="action" data-method="{h(method)}" data-url="{h(url)}"{extra}>'
        f'{fields}<button type="submit">{h(submit)}</button></form>'
    )
