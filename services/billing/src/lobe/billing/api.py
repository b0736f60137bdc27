"""The usage API, served on the ops port beside /health and /metrics.

- `/v1/usage*`: authenticated by the caller's API key (`Authorization: Bearer lobe-sk-...`); a
  user only ever sees their own usage (the user id comes from the key, never from the request).
- `/v1/admin/*`: authenticated by BILLING_ADMIN_TOKEN; answers 404 when no token is configured.
Errors use OpenAI's error shape so clients of the gateway parse them the same way.
"""

from __future__ import annotations

import hmac
from typing import Any, TypeVar

import asyncpg
from aiohttp import web
from pydantic import BaseModel, SecretStr, ValidationError

from lobe.billing.admin import Admin
from lobe.billing.admin_requests import LimitsChange, NewKey, NewUser, PlanChange, UsageResetAsk
from lobe.billing.errors import (
    NotAnnouncedError,
    NotFoundError,
    ResetContendedError,
    UnknownPlanError,
    UserExistsError,
)
from lobe.billing.keys import hash_key, owner_of
from lobe.billing.openapi import billing_openapi
from lobe.billing.periods import current_period, valid_period
from lobe.billing.plans import Override, PlanBook
from lobe.billing.prices import PriceTable
from lobe.billing.report_models import SuggestionList, UsageResetDone
from lobe.billing.reports import limits_report, usage_report
from lobe.billing.suggestions import suggestions
from lobe.shared.json_body import parse_json_object
from lobe.shared.openai_errors import ApiError, bearer_token, invalid_request, openai_errors
from lobe.shared.openapi import serve_openapi

POOL = web.AppKey("pool", asyncpg.Pool)
PRICES = web.AppKey("prices", PriceTable)
PLANS = web.AppKey("plans", PlanBook)
ADMIN_TOKEN = web.AppKey("admin_token", str)
ADMIN = web.AppKey("admin", Admin)
M = TypeVar("M", bound=BaseModel)


async def _caller(request: web.Request) -> str:
    key = bearer_token(request)
    owner = await owner_of(request.app[POOL], hash_key(key)) if key else None
    if owner is None:
        raise ApiError(401, "Invalid or missing API key.", "invalid_api_key")
    return owner.user_id


async def _period(request: web.Request, user_id: str) -> str:
    """The `period` asked for, or the user's current one (the latest a usage reset opened)."""
    plans = request.app[PLANS]
    period = request.query.get("period")
    if period is None:
        return await current_period(request.app[POOL], plans, user_id)
    if not valid_period(plans, period):
        raise ApiError(
            400,
            f"period {period!r} is not a {plans.period} period key (or one with a reset's .N)",
            "invalid_period",
            "period",
        )
    return period


def _model_json(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(model.model_dump(mode="json", by_alias=True, exclude_none=True), status=status)


async def get_usage(request: web.Request) -> web.Response:
    user = await _caller(request)
    plans = request.app[PLANS]
    return _model_json(await usage_report(request.app[POOL], plans, user, await _period(request, user)))


async def get_limits(request: web.Request) -> web.Response:
    user = await _caller(request)
    period = await _period(request, user)
    return web.json_response(await limits_report(request.app[POOL], request.app[PLANS], user, period))


async def get_suggestions(request: web.Request) -> web.Response:
    user = await _caller(request)
    period = await _period(request, user)
    data = await suggestions(request.app[POOL], request.app[PRICES], user, period)
    return _model_json(SuggestionList(period=period, data=data))


# -- admin ------------------------------------------------------------------------------------------
def _admin(request: web.Request) -> None:
    expected = request.app.get(ADMIN_TOKEN)
    if not expected:
        raise ApiError(404, "The admin API is disabled (BILLING_ADMIN_TOKEN is not set).", "not_found")
    given = bearer_token(request) or ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "Invalid admin token.", "invalid_api_key")


async def _body(request: web.Request, model: type[M]) -> M:
    data = parse_json_object(await request.read() or b"{}")  # strict JSON, as at the gateway
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_request(exc) from exc


async def create_user(request: web.Request) -> web.Response:
    _admin(request)
    body = await _body(request, NewUser)
    user = await request.app[ADMIN].create_user(body.id, body.plan, body.email)
    return web.json_response(
        {"id": body.id, "plan": user.plan, "email": body.email, "created": user.created},
        status=201 if user.created else 200,
    )


async def issue_key(request: web.Request) -> web.Response:
    _admin(request)
    body = await _body(request, NewKey)
    issued = await request.app[ADMIN].issue_key(request.match_info["user_id"], body.name)
    return web.json_response(
        {"id": issued.id, "user_id": issued.user_id, "key": issued.key, "prefix": issued.prefix}, status=201
    )


async def revoke_key(request: web.Request) -> web.Response:
    _admin(request)
    user_id = await request.app[ADMIN].revoke_key(request.match_info["key_id"])
    return web.json_response({"id": request.match_info["key_id"], "user_id": user_id, "revoked": True})


async def set_plan(request: web.Request) -> web.Response:
    _admin(request)
    body = await _body(request, PlanChange)
    await request.app[ADMIN].set_plan(request.match_info["user_id"], body.plan)
    return web.json_response({"id": request.match_info["user_id"], "plan": body.plan})


async def set_limits(request: web.Request) -> web.Response:
    _admin(request)
    body = await _body(request, LimitsChange)
    override = Override(body.tokens, body.cost_usd, body.requests, body.rate_tier)
    await request.app[ADMIN].set_limits(request.match_info["user_id"], override)
    return web.json_response({"id": request.match_info["user_id"], **body.model_dump(mode="json")})


async def reset_usage(request: web.Request) -> web.Response:
    _admin(request)
    await _body(request, UsageResetAsk)
    done = await request.app[ADMIN].reset_usage(request.match_info["user_id"])
    answer = UsageResetDone(
        user_id=done.user_id,
        closed_period=done.closed,
        period=done.opened,
        started_at=done.at,
        moved_holds=done.moved_holds,
    )
    return _model_json(answer, status=201)


@web.middleware
async def admin_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except NotFoundError as exc:
        raise ApiError(404, str(exc), "not_found") from exc
    except UserExistsError as exc:
        raise ApiError(409, str(exc), "user_exists") from exc
    except UnknownPlanError as exc:
        raise ApiError(400, str(exc), "invalid_plan", "plan") from exc
    except NotAnnouncedError as exc:
        raise ApiError(503, str(exc), "not_announced", headers={"Retry-After": "1"}) from exc
    except ResetContendedError as exc:
        raise ApiError(409, str(exc), "reset_contended") from exc


def build_api(
    pool: asyncpg.Pool, prices: PriceTable, plans: PlanBook, admin_token: SecretStr | None, admin: Admin
) -> web.Application:
    app = web.Application(middlewares=[openai_errors, admin_errors])
    app[POOL] = pool
    app[ADMIN] = admin
    app[PRICES] = prices
    app[PLANS] = plans
    if admin_token is not None and admin_token.get_secret_value():
        app[ADMIN_TOKEN] = admin_token.get_secret_value()
    app.router.add_get("/v1/usage", get_usage)
    app.router.add_get("/v1/usage/limits", get_limits)
    app.router.add_get("/v1/usage/suggestions", get_suggestions)
    app.router.add_post("/v1/admin/users", create_user)
    app.router.add_post("/v1/admin/users/{user_id}/keys", issue_key)
    app.router.add_delete("/v1/admin/keys/{key_id}", revoke_key)
    app.router.add_put("/v1/admin/users/{user_id}/plan", set_plan)
    app.router.add_put("/v1/admin/users/{user_id}/limits", set_limits)
    app.router.add_post("/v1/admin/users/{user_id}/reset-usage", reset_usage)
    from lobe.billing.admin_reads import add_admin_reads  # it reads this module's keys and helpers

    add_admin_reads(app)
    serve_openapi(app, billing_openapi())
    return app
