"""/v1/usage, /v1/usage/limits, /v1/usage/suggestions at the gateway: the caller's usage reports,
for a session as for an API key (billing's own /v1/usage takes an API key only, on its internal
port). The gateway asks billing's admin API for the caller's user, with BILLING_ADMIN_TOKEN, as it
forwards admin sessions' calls (lobe.gateway.auth.admin): the user id comes from the credential,
never from the request.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from lobe.gateway.auth.admin import BILLING_HTTP, BILLING_TIMEOUT_S
from lobe.gateway.auth.assembly import AUTH
from lobe.gateway.resources import SETTINGS
from lobe.shared.openai_errors import ApiError

REPORTS = {
    "/v1/usage": "usage",
    "/v1/usage/limits": "usage/limits",
    "/v1/usage/suggestions": "usage/suggestions",
}


async def billing_get(
    request: web.Request, path: str, query: dict[str, str] | None = None
) -> tuple[int, Any]:
    """GET billing's admin API at `path` (under /v1/admin/): its status and JSON body."""
    settings = request.app[SETTINGS]
    if not settings.billing_admin_url or settings.billing_admin_token is None:
        raise ApiError(404, "Billing's reports are not configured on this gateway.", "not_found")
    url = settings.billing_admin_url.rstrip("/") + "/v1/admin/" + path
    headers = {"Authorization": f"Bearer {settings.billing_admin_token.get_secret_value()}"}
    try:
        async with request.app[BILLING_HTTP].get(
            url, params=query or {}, headers=headers, timeout=aiohttp.ClientTimeout(total=BILLING_TIMEOUT_S)
        ) as answer:
            return answer.status, await answer.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        raise ApiError(503, "Billing did not answer; retry shortly.", "billing_unavailable") from None


async def user_report(request: web.Request, user_id: str, report: str) -> tuple[int, Any]:
    """One of a user's reports (`usage`, `usage/limits`, `usage/suggestions`), for `?period=`."""
    query = {"period": request.query["period"]} if "period" in request.query else None
    return await billing_get(request, f"users/{quote(user_id, safe='')}/{report}", query)


async def usage(request: web.Request) -> web.Response:
    caller = await request.app[AUTH].auth.authenticate(request)
    status, body = await user_report(request, caller.user_id, REPORTS[request.path])
    return web.json_response(body, status=status)


def add_usage_routes(app: web.Application) -> None:
    for path in REPORTS:
        app.router.add_get(path, usage)
