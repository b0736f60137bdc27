"""The gateway's admin API (/v1/admin/*) and its one access check.

`require_admin` is the single guard every admin route calls. Today it accepts the bearer token in
GATEWAY_ADMIN_TOKEN (the admin API is off when unset); sign-in with the admin role (issue 8)
replaces its body, and every admin route follows.
"""

from __future__ import annotations

import hmac

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lobe.gateway.resources import RESOURCES
from lobe.shared.openai_errors import ApiError, bearer_token, invalid_request


async def require_admin(request: web.Request) -> None:
    """Return when the request comes from an admin; else 401 (no credential) or 403."""
    token = request.app[RESOURCES].settings.gateway_admin_token
    if token is None:
        raise ApiError(404, "The admin API is not enabled on this gateway.", "admin_disabled")
    presented = bearer_token(request)
    if presented is None:
        raise ApiError(401, "Admin endpoints need 'Authorization: Bearer <admin token>'.", "missing_api_key")
    if not hmac.compare_digest(presented.encode(), token.get_secret_value().encode()):
        raise ApiError(403, "This credential may not use the admin API.", "not_admin")


class CacheInvalidation(BaseModel):
    """Both None: every cached answer."""

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(default=None, min_length=1, max_length=128)
    model: str | None = Field(default=None, min_length=1, max_length=256)


async def invalidate_cache(request: web.Request) -> web.Response:
    """POST /v1/admin/cache/invalidate {"user_id"?, "model"?}: drop cached answers everywhere."""
    await require_admin(request)
    try:
        scope = CacheInvalidation.model_validate_json(await request.read() or b"{}")
    except ValidationError as exc:
        raise invalid_request(exc) from None
    removed = await request.app[RESOURCES].cache.invalidate(scope.user_id, scope.model)
    return web.json_response({"invalidated": removed, "user_id": scope.user_id, "model": scope.model})
