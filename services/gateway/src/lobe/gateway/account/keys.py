"""/v1/keys: the caller's own API keys, for a session or an API key (so a user needs no admin
to get one). Billing owns keys, so each route is one bus command to it (`auth.key.issue`,
`auth.key.list`, `auth.key.revoke`), which applies the plan's cap on live keys. A session cookie
changes state only from our own pages (lobe.gateway.auth.browser), as everywhere.

GET    /v1/keys            -> the caller's keys (prefix, name, created, last used), and the cap
POST   /v1/keys {"name"}   -> 201 with the key, its secret shown this once; 403 past the cap
DELETE /v1/keys/{key_id}   -> revoked on every gateway (billing announces `auth.key.revoked`)
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lobe.gateway.auth.assembly import AUTH
from lobe.gateway.json_request import read_json_object
from lobe.gateway.resources import RESOURCES, SETTINGS
from lobe.shared.events.auth import (
    AUTH_KEY_ISSUE,
    AUTH_KEY_LIST,
    AUTH_KEY_REVOKE,
    KeyIssue,
    KeyIssueAnswer,
    KeyList,
    KeyListAnswer,
    KeyRevoke,
    KeyRevokeAnswer,
    OwnKey,
)
from lobe.shared.openai_errors import ApiError, invalid_request


class NewOwnKey(BaseModel):
    """POST /v1/keys: a name to tell the key by (optional)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=100)


def _unanswered() -> ApiError:
    return ApiError(503, "Keys cannot be reached right now; retry shortly.", "billing_unavailable")


async def _ask(request: web.Request, subject: str, payload: BaseModel, reply: type[BaseModel]) -> Any:
    answer = await request.app[RESOURCES].bus.request(
        subject, payload, request.app[SETTINGS].billing_timeout_s
    )
    if not isinstance(answer, reply):
        raise _unanswered()
    return answer


def key_json(key: OwnKey) -> dict[str, Any]:
    return {"object": "api_key", **key.model_dump(mode="json")}


async def own_keys(request: web.Request, user_id: str) -> KeyListAnswer:
    """The user's keys, as billing has them (the console's keys page reads them too)."""
    ask = KeyList(request_id=uuid.uuid4().hex, user_id=user_id)
    answer: KeyListAnswer = await _ask(request, AUTH_KEY_LIST, ask, KeyListAnswer)
    return answer


async def list_keys(request: web.Request) -> web.Response:
    caller = await request.app[AUTH].auth.authenticate(request)
    answer = await own_keys(request, caller.user_id)
    data = [key_json(key) for key in answer.keys]
    return web.json_response({"object": "list", "data": data, "max_api_keys": answer.max_api_keys})


async def create_key(request: web.Request) -> web.Response:
    caller = await request.app[AUTH].auth.authenticate(request)
    try:
        body = NewOwnKey.model_validate(await read_json_object(request, default=b"{}"))
    except ValidationError as exc:
        raise invalid_request(exc) from None
    ask = KeyIssue(request_id=uuid.uuid4().hex, user_id=caller.user_id, name=body.name)
    answer: KeyIssueAnswer = await _ask(request, AUTH_KEY_ISSUE, ask, KeyIssueAnswer)
    if answer.refusal == "key_limit":
        raise ApiError(
            403,
            f"Your plan allows {answer.max_api_keys} live API keys; revoke one to create another.",
            "key_limit_reached",
        )
    if answer.key is None or answer.secret is None:  # unknown_user: a bootstrap key's owner, say
        raise ApiError(404, "Billing has no account for this caller.", "not_found")
    return web.json_response({**key_json(answer.key), "key": answer.secret}, status=201)


async def revoke_key(request: web.Request) -> web.Response:
    caller = await request.app[AUTH].auth.authenticate(request)
    key_id = request.match_info["key_id"]
    ask = KeyRevoke(request_id=uuid.uuid4().hex, user_id=caller.user_id, api_key_id=key_id)
    answer: KeyRevokeAnswer = await _ask(request, AUTH_KEY_REVOKE, ask, KeyRevokeAnswer)
    if not answer.revoked:
        raise ApiError(404, f"You have no API key {key_id!r}.", "not_found")
    return web.json_response({"object": "api_key", "id": key_id, "revoked": True})


def add_key_routes(app: web.Application) -> None:
    app.router.add_get("/v1/keys", list_keys)
    app.router.add_post("/v1/keys", create_key)
    app.router.add_delete("/v1/keys/{key_id}", revoke_key)
