"""Billing's OpenAPI 3.1 document (GET /openapi.json on its ops port, docs/openapi/billing.json):
the usage API (a user's own usage, by API key), the admin API (BILLING_ADMIN_TOKEN) and the ops
routes. Served on the ops port only, which no Ingress routes to (docs/security.md)."""

from __future__ import annotations

from typing import Any

from lobe.billing.admin_requests import LimitsChange, NewKey, NewUser, PlanChange, RoleChange, UsageResetAsk
from lobe.billing.report_models import SuggestionList, UsageReport, UsageResetDone
from lobe.shared.lifecycle import VERSION
from lobe.shared.openapi import Document, document, health_paths, json_answer, model_ref, operation, parameter

PERIOD = parameter(
    "period",
    "query",
    "A period key of the plans' period (2026-11, 2026-W47 or 2026-11-30), or one a usage reset opened "
    "in it (2026-11.1); default: the caller's current period.",
)
USER_ID = parameter("user_id", "path", "The user.")
ADMIN_ERRORS = (400, 401, 404, 503)


def usage_paths() -> dict[str, Any]:
    return {
        "/v1/usage": {
            "get": operation(
                "The caller's usage in a period: totals, by provider and model (`breakdown`), by provider "
                "(`byProvider`) and by model (`byModel`), and the periods of its calendar period.",
                json_answer("The report.", model_ref(UsageReport)),
                (400, 401),
                parameters=[PERIOD],
            )
        },
        "/v1/usage/limits": {
            "get": operation(
                "The caller's plan limits and what is left.",
                json_answer("The limits."),
                (400, 401),
                parameters=[PERIOD],
            )
        },
        "/v1/usage/suggestions": {
            "get": operation(
                "Ways to spend less, from the caller's usage in the period: `model_switch` and "
                "`implement_caching` (LobeChat's), `small_requests`, `cheaper_model`, `prompt_caching`.",
                json_answer("Suggestions.", model_ref(SuggestionList)),
                (400, 401),
                parameters=[PERIOD],
            )
        },
    }


def admin_paths() -> dict[str, Any]:
    def admin(
        summary: str, body: Any = None, params: list[dict[str, Any]] | None = None, created: bool = False
    ) -> dict[str, Any]:
        ok = json_answer("Done.", status=201 if created else 200)
        return operation(summary, ok, ADMIN_ERRORS, body=body, parameters=params)

    user_usage = "/v1/admin/users/{user_id}/usage"
    return {
        "/v1/admin/users": {
            "get": operation(
                "Find users: `q` is part of an id or e-mail (none: every user); the newest 50 that match.",
                json_answer("The users: id, email, role, plan, created_at."),
                ADMIN_ERRORS,
                parameters=[parameter("q", "query", "Part of a user's id or e-mail.")],
            ),
            "post": operation(
                "Create a user. An existing one is never changed: the same plan and e-mail answer 200 "
                "(`created`: false), another plan or e-mail 409 (PUT …/plan moves a user).",
                {**json_answer("Created.", status=201), **json_answer("Exists, unchanged.")},
                (*ADMIN_ERRORS, 409),
                body=model_ref(NewUser),
            ),
        },
        "/v1/admin/users/{user_id}/keys": {
            "get": admin(
                "A user's API keys, newest first: prefix, name, created, last used, revoked.", None, [USER_ID]
            ),
            "post": admin("Issue an API key (shown once).", model_ref(NewKey), [USER_ID], created=True),
        },
        "/v1/admin/users/{user_id}/role": {
            "put": admin("Make a user an admin, or not.", model_ref(RoleChange), [USER_ID])
        },
        user_usage: {
            "get": operation(
                "A user's usage in a period, as GET /v1/usage answers it to the user.",
                json_answer("The report.", model_ref(UsageReport)),
                ADMIN_ERRORS,
                parameters=[USER_ID, PERIOD],
            )
        },
        user_usage + "/limits": {
            "get": admin(
                "A user's limits and what is left, as GET /v1/usage/limits.", None, [USER_ID, PERIOD]
            )
        },
        user_usage + "/suggestions": {
            "get": operation(
                "Ways for a user to spend less, as GET /v1/usage/suggestions.",
                json_answer("Suggestions.", model_ref(SuggestionList)),
                ADMIN_ERRORS,
                parameters=[USER_ID, PERIOD],
            )
        },
        "/v1/admin/keys/{key_id}": {
            "delete": admin("Revoke an API key.", None, [parameter("key_id", "path", "The key's id.")])
        },
        "/v1/admin/users/{user_id}/plan": {
            "put": admin("Move a user to another plan.", model_ref(PlanChange), [USER_ID])
        },
        "/v1/admin/users/{user_id}/limits": {
            "put": admin("Override a user's limits.", model_ref(LimitsChange), [USER_ID])
        },
        "/v1/admin/users/{user_id}/reset-usage": {
            "post": operation(
                "Reset a user's usage: close the current period and open a new one, from which the "
                "limits count. The ledger keeps every row; GET /v1/usage lists the periods. Each call "
                "opens a period (not idempotent).",
                json_answer("The period closed and the one opened.", model_ref(UsageResetDone), status=201),
                (*ADMIN_ERRORS, 409),
                body=model_ref(UsageResetAsk),
                parameters=[USER_ID],
            )
        },
    }


def ops_paths() -> dict[str, Any]:
    metrics = {
        "200": {
            "description": "Prometheus text format.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    }
    return {
        **health_paths("/health/live", "/health/ready", "PostgreSQL and NATS reachable"),
        "/metrics": {"get": operation("Prometheus metrics.", metrics, secured=False)},
    }


def billing_openapi() -> Document:
    return document(
        "Lobe billing",
        VERSION,
        "Usage reports for API keys and the admin API, on billing's ops port (internal: no Ingress "
        "routes to it; the gateway forwards /v1/admin/* for admin sessions).",
        {**usage_paths(), **admin_paths(), **ops_paths()},
        [
            NewUser,
            NewKey,
            PlanChange,
            RoleChange,
            LimitsChange,
            UsageResetAsk,
            UsageReport,
            SuggestionList,
            UsageResetDone,
        ],
    )
