"""The console's routes: its pages and its two static files (served from this package)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from lobe.gateway.console import fleet, pages
from lobe.gateway.console.page import HEADERS, SIGN_IN, SignInFirst

STATIC = Path(__file__).parent / "static"
FILES = {"console.js": "text/javascript", "console.css": "text/css"}
Page = Callable[[web.Request], Awaitable[web.StreamResponse]]
PAGES: dict[str, Page] = {
    "/console": pages.home,
    SIGN_IN: pages.sign_in_page,
    "/console/keys": pages.keys_page,
    "/console/usage": pages.usage_page,
    "/console/playground": pages.playground_page,
    "/console/admin/users": pages.admin_users_page,
    "/console/admin/users/{user_id}": pages.admin_user_page,
    "/console/admin/models": fleet.models_page,
}


def _page(handler: Page) -> Page:
    async def page(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except SignInFirst:
            raise web.HTTPSeeOther(SIGN_IN, headers=HEADERS) from None

    return page


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in FILES:
        raise web.HTTPNotFound()
    return web.Response(
        body=(STATIC / name).read_bytes(),
        content_type=FILES[name],
        headers={**HEADERS, "Cache-Control": "no-cache"},
    )


def add_console_routes(app: web.Application) -> None:
    for path, handler in PAGES.items():
        app.router.add_get(path, _page(handler))
    app.router.add_get("/console/static/{name}", static)
