"""/v1/admin/*: for admin sessions only (401 without a session, 403 for any other role).

Sessions are the gateway's: an admin lists and revokes them here. Users, keys, plans and limits
are billing's: the gateway forwards those requests to billing's admin API (BILLING_ADMIN_URL,
internal) with BILLING_ADMIN_TOKEN, so the session (and its revocation) is checked in one place
and billing keeps a single way in; the static token stays the break-glass for operators who
call billing directly (`lobe admin`). `X-Lobe-Admin` tells billing which admin asked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from lobe.gateway.auth.assembly import AUTH
from lobe.gateway.auth.revocations import RevokedSessions
from lobe.gateway.json_request import read_body, require_json
from lobe.gateway.redis_pool import REDIS_ERRORS
from lobe.gateway.resources import SETTINGS
from lobe.shared.openai_errors import ApiError

FORWARDED_HEADERS = ("Content-Type", "Accept")
BILLING_TIMEOUT_S = 10.0
BILLING_HTTP = web.AppKey("billing_http", aiohttp.ClientSession)  # to billing's admin API


def _sessions(request: web.Request) -> RevokedSessions:
    sessions = request.app[AUTH].sessions
    if sessions is None:
        raise ApiError(404, "Sessions are not configured on this gateway.", "sign_in_disabled")
    return sessions


def _redis_away() -> ApiError:
    return ApiError(503, "Sessions cannot be changed right now; retry shortly.", "sessions_unavailable")


async def list_sessions(request: web.Request) -> web.Response:
    await request.app[AUTH].auth.admin(request)
    user_id = request.match_info["user_id"]
    try:
        live = await _sessions(request).store.of_user(user_id)
    except REDIS_ERRORS:
        raise _redis_away() from None
    data = [{"id": sid, "expires_at": exp} for sid, exp in sorted(live.items(), key=lambda item: item[1])]
    return web.json_response({"object": "list", "user_id": user_id, "data": data})


async def revoke_sessions(request: web.Request) -> web.Response:
    """DELETE …/sessions: every session of the user; …/sessions/{session_id}: that one."""
    await request.app[AUTH].auth.admin(request)
    sessions = _sessions(request)
    user_id = request.match_info["user_id"]
    wanted = request.match_info.get("session_id")
    try:
        if wanted is None:
            return web.json_response(
                {"user_id": user_id, "revoked": await sessions.end_all(user_id, "revoked")}
            )
        expires_at = (await sessions.store.of_user(user_id)).get(wanted)
        if expires_at is None:
            raise ApiError(404, f"No live session {wanted!r} for user {user_id!r}.", "not_found")
        await sessions.end(user_id, wanted, expires_at, "revoked")
    except REDIS_ERRORS:
        raise _redis_away() from None
    return web.json_response({"user_id": user_id, "revoked": [wanted]})


async def billing_admin(request: web.Request) -> web.StreamResponse:
    """Anything else under /v1/admin/: billing's admin API, for admins."""
    admin = await request.app[AUTH].auth.admin(request)
    settings = request.app[SETTINGS]
    http = request.app[BILLING_HTTP]
    if not settings.billing_admin_url or settings.billing_admin_token is None:
        raise ApiError(404, "Billing's admin API is not configured on this gateway.", "not_found")
    require_json(request)  # billing's admin API takes JSON only
    url = settings.billing_admin_url.rstrip("/") + request.rel_url.path_qs
    headers = {name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers}
    headers["Authorization"] = f"Bearer {settings.billing_admin_token.get_secret_value()}"
    headers["X-Lobe-Admin"] = admin.sub
    try:
        async with http.request(
            request.method,
            url,
            data=await read_body(request),
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=BILLING_TIMEOUT_S),
        ) as answer:
            body = await answer.read()
            content_type = answer.headers.get("Content-Type", "application/json")
            return web.Response(status=answer.status, body=body, headers={"Content-Type": content_type})
    except (aiohttp.ClientError, TimeoutError):
        raise ApiError(
            503, "Billing's admin API did not answer; retry shortly.", "billing_unavailable"
        ) from None


async def billing_http(app: web.Application) -> AsyncIterator[None]:
    app[BILLING_HTTP] = aiohttp.ClientSession()
    yield
    await app[BILLING_HTTP].close()


def add_admin_routes(app: web.Application) -> None:
    app.cleanup_ctx.append(billing_http)
    sessions = "/v1/admin/users/{user_id}/sessions"
    app.router.add_get(sessions, list_sessions)
    app.router.add_delete(sessions, revoke_sessions)
    app.router.add_delete(sessions + "/{session_id}", revoke_sessions)
    app.router.add_route("*", "/v1/admin/{path:.*}", billing_admin)
