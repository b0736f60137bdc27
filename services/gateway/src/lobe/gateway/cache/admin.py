"""POST /v1/admin/cache/invalidate: drop cached answers on every replica (admin sessions only)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lobe.gateway.auth.assembly import AUTH
from lobe.gateway.cache.response_cache import CACHE
from lobe.gateway.json_request import read_json_object
from lobe.shared.openai_errors import invalid_request


class CacheInvalidation(BaseModel):
    """Both None: every cached answer."""

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(default=None, min_length=1, max_length=128)
    model: str | None = Field(default=None, min_length=1, max_length=256)


async def invalidate_cache(request: web.Request) -> web.Response:
    """{"user_id"?, "model"?}: 401 without a session, 403 for a non-admin (the gateway's one check)."""
    await request.app[AUTH].auth.admin(request)
    data = await read_json_object(request, default=b"{}")
    try:
        scope = CacheInvalidation.model_validate(data)
    except ValidationError as exc:
        raise invalid_request(exc) from None
    removed = await request.app[CACHE].invalidate(scope.user_id, scope.model)
    return web.json_response({"invalidated": removed, "user_id": scope.user_id, "model": scope.model})
