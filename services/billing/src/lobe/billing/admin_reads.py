"""The admin API's reads, for the console's admin pages (forwarded by the gateway for admin
sessions): find users, any user's keys, usage, limits and suggestions; and a user's role.

Each answer is the one the user's own endpoint gives (lobe.billing.api), for the user named in
the path.
"""

from __future__ import annotations

from aiohttp import web

from lobe.billing import api
from lobe.billing.admin_requests import RoleChange
from lobe.billing.own_keys import keys_of
from lobe.billing.report_models import SuggestionList
from lobe.billing.reports import limits_report, usage_report
from lobe.billing.suggestions import suggestions
from lobe.shared.openai_errors import ApiError

USERS_SHOWN = 50
_FIND = """
SELECT id, email, role, plan, created_at FROM users
WHERE $1 = '' OR id ILIKE '%' || $1 || '%' OR email ILIKE '%' || $1 || '%'
ORDER BY created_at DESC, id LIMIT $2
"""


async def find_users(request: web.Request) -> web.Response:
    """`q`: part of an id or e-mail (LIKE wildcards in it are escaped); the newest 50 that match."""
    api._admin(request)
    wanted = request.query.get("q", "").strip()[:320]
    escaped = wanted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = await request.app[api.POOL].fetch(_FIND, escaped, USERS_SHOWN)
    data = [{**dict(row), "created_at": row["created_at"].isoformat()} for row in rows]
    return web.json_response({"object": "list", "data": data})


async def set_role(request: web.Request) -> web.Response:
    api._admin(request)
    body = await api._body(request, RoleChange)
    await request.app[api.ADMIN].set_role(request.match_info["user_id"], body.role)
    return web.json_response({"id": request.match_info["user_id"], "role": body.role})


async def _known_user(request: web.Request) -> str:
    api._admin(request)
    user_id = request.match_info["user_id"]
    if await request.app[api.POOL].fetchval("SELECT 1 FROM users WHERE id = $1", user_id) is None:
        raise ApiError(404, f"No user {user_id!r}.", "not_found")
    return user_id


async def user_keys(request: web.Request) -> web.Response:
    user_id = await _known_user(request)
    keys = await keys_of(request.app[api.POOL], user_id)
    return web.json_response({"object": "list", "data": [k.model_dump(mode="json") for k in keys]})


async def user_usage(request: web.Request) -> web.Response:
    user_id = await _known_user(request)
    period = await api._period(request, user_id)
    return api._model_json(await usage_report(request.app[api.POOL], request.app[api.PLANS], user_id, period))


async def user_limits(request: web.Request) -> web.Response:
    user_id = await _known_user(request)
    period = await api._period(request, user_id)
    return web.json_response(
        await limits_report(request.app[api.POOL], request.app[api.PLANS], user_id, period)
    )


async def user_suggestions(request: web.Request) -> web.Response:
    user_id = await _known_user(request)
    period = await api._period(request, user_id)
    data = await suggestions(request.app[api.POOL], request.app[api.PRICES], user_id, period)
    return api._model_json(SuggestionList(period=period, data=data))


def add_admin_reads(app: web.Application) -> None:
    user = "/v1/admin/users/{user_id}"
    app.router.add_get("/v1/admin/users", find_users)
    app.router.add_put(user + "/role", set_role)
    app.router.add_get(user + "/keys", user_keys)
    app.router.add_get(user + "/usage", user_usage)
    app.router.add_get(user + "/usage/limits", user_limits)
    app.router.add_get(user + "/usage/suggestions", user_suggestions)
