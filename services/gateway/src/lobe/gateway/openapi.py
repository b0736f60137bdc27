"""The gateway's OpenAPI 3.1 document (GET /openapi.json, docs/openapi/gateway.json): the
OpenAI-compatible API, sign-in and sessions, and the admin routes (its own and billing's, which it
forwards). Request bodies are the models that validate them; every error is OpenAI's format."""

from __future__ import annotations

from typing import Any

from lobe.gateway.auth.routes import JWKS_PATH
from lobe.gateway.auth.sign_in_flow import CALLBACK_PATH
from lobe.gateway.cache.admin import CacheInvalidation
from lobe.gateway.request_body import EdgeRequest
from lobe.gateway.responses_schema import ResponsesRequest
from lobe.shared.embeddings_schema import EmbeddingsRequest
from lobe.shared.lifecycle import VERSION
from lobe.shared.openapi import Document, document, health_paths, json_answer, model_ref, operation, parameter

# Billing's admin API, forwarded for admin sessions (docs/openapi/billing.json describes bodies).
FORWARDED_ADMIN = {
    "/v1/admin/users": {"post": "Create a user (or move it to a plan)."},
    "/v1/admin/users/{user_id}/keys": {"post": "Issue an API key; the key is in this answer only."},
    "/v1/admin/keys/{key_id}": {"delete": "Revoke an API key on every gateway."},
    "/v1/admin/users/{user_id}/plan": {"put": "Move a user to another plan."},
    "/v1/admin/users/{user_id}/limits": {"put": "Override a user's limits."},
    "/v1/admin/users/{user_id}/reset-usage": {
        "post": "Reset a user's usage: a new period, limits count from now."
    },
}
ADMIN_ERRORS = (400, 401, 403, 404, 503)
USER_ID = parameter("user_id", "path", "The user.")
PROVIDER = parameter("provider", "path", "A configured sign-in provider: oidc or github.")


def chat_paths() -> dict[str, Any]:
    chat_ok = {
        "200": {
            "description": "The answer: one chat.completion object, or chat.completion.chunk server-sent "
            "events ending with `data: [DONE]` (an error after the first byte is an error event).",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/event-stream": {"schema": {"type": "string"}},
            },
        }
    }
    return {
        "/v1/chat/completions": {
            "post": operation(
                "Create a chat completion (OpenAI's API).",
                chat_ok,
                (400, 401, 404, 413, 429, 502, 503, 504),
                body=model_ref(EdgeRequest),
            )
        },
        "/v1/embeddings": {
            "post": operation(
                "Create embeddings (OpenAI's API): one vector per input, as floats or base64 "
                "float32 (`encoding_format`); deterministic, so cached per user.",
                json_answer("A list object of embedding objects, with the input tokens in `usage`."),
                (400, 401, 404, 413, 429, 502, 503, 504),
                body=model_ref(EmbeddingsRequest),
            )
        },
        "/v1/chat/completions/{request_id}/stream": {
            "get": operation(
                "Resume a resumable stream (`X-Lobe-Resumable: true` on a streamed chat completion "
                "or response) after a lost connection, on any replica: the events after "
                "`Last-Event-ID`, then the rest live (docs/streaming.md).",
                {
                    "200": {
                        "description": "The answer's remaining server-sent events, each with its id.",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    }
                },
                (400, 401, 404, 503),
                parameters=[
                    parameter("request_id", "path", "The stream's X-Request-Id."),
                    parameter(
                        "Last-Event-ID", "header", "The last event id the client read, `<request_id>:<n>`."
                    ),
                ],
            )
        },
        "/v1/responses": {
            "post": operation(
                "Create a model response (OpenAI's Responses API), for the models whose routing serves "
                "`responses`: translated to a chat request, so every provider answers it. Not stored: "
                "`store` must be false and `previous_response_id` is refused.",
                {
                    "200": {
                        "description": "The `response` object, or its server-sent events (`event: "
                        "response.created` … `response.completed`, each with `sequence_number`; an "
                        "error after the first byte is an `error` event then `response.failed`); "
                        "resumable as a chat stream is, with `X-Lobe-Resumable: true`.",
                        "content": {
                            "application/json": {"schema": {"type": "object"}},
                            "text/event-stream": {"schema": {"type": "string"}},
                        },
                    }
                },
                (400, 401, 404, 413, 429, 502, 503, 504),
                body=model_ref(ResponsesRequest),
            )
        },
        "/v1/models": {
            "get": operation(
                "The models the running workers route.", json_answer("A model list."), (401, 503)
            )
        },
    }


def auth_paths() -> dict[str, Any]:
    redirect = {"302": {"description": "To the provider's sign-in page."}}
    signed_in = {
        **json_answer("The session token (when no return_to was given)."),
        "303": {"description": "To return_to, with the session cookie set."},
    }
    return {
        "/auth/login/{provider}": {
            "get": operation(
                "Begin signing in.", redirect, (400, 404, 429), parameters=[PROVIDER], secured=False
            )
        },
        CALLBACK_PATH + "{provider}": {
            "get": operation(
                "The provider sends the browser back here.",
                signed_in,
                (400, 403, 404, 429, 503),
                parameters=[PROVIDER],
                secured=False,
            )
        },
        "/auth/logout": {
            "post": operation(
                "End this session on every replica.", json_answer("Signed out."), (401, 404, 503)
            )
        },
        "/auth/session": {
            "get": operation("This session's user and expiry.", json_answer("The session."), (401,))
        },
        "/auth/providers": {
            "get": operation("Configured sign-in providers.", json_answer("The providers."), secured=False)
        },
        JWKS_PATH: {
            "get": operation("Public keys that verify sessions.", json_answer("A JWK Set."), secured=False)
        },
    }


def admin_paths() -> dict[str, Any]:
    sessions = "/v1/admin/users/{user_id}/sessions"
    paths: dict[str, Any] = {
        sessions: {
            "get": operation(
                "A user's live sessions.", json_answer("The sessions."), ADMIN_ERRORS, parameters=[USER_ID]
            ),
            "delete": operation(
                "Revoke every session of a user.", json_answer("Revoked."), ADMIN_ERRORS, parameters=[USER_ID]
            ),
        },
        "/v1/admin/cache/invalidate": {
            "post": operation(
                "Drop cached answers on every replica (of a user, a model, or all).",
                json_answer("How many were dropped."),
                ADMIN_ERRORS,
                body=model_ref(CacheInvalidation),
            )
        },
        sessions + "/{session_id}": {
            "delete": operation(
                "Revoke one session.",
                json_answer("Revoked."),
                ADMIN_ERRORS,
                parameters=[USER_ID, parameter("session_id", "path", "The session.")],
            )
        },
    }
    for path, methods in FORWARDED_ADMIN.items():
        params = [
            parameter(p, "path", f"The {p.removesuffix('_id')}.")
            for p in ("user_id", "key_id")
            if f"{{{p}}}" in path
        ]
        for method, summary in methods.items():
            body = {"type": "object"} if method in ("post", "put") else None
            ok = json_answer("Billing's answer.", status=201 if method == "post" else 200)
            paths.setdefault(path, {})[method] = operation(
                summary + " (billing's admin API, forwarded for admin sessions)",
                ok,
                ADMIN_ERRORS,
                body=body,
                parameters=params,
            )
    return paths


def gateway_openapi() -> Document:
    return document(
        "Lobe gateway",
        VERSION,
        "OpenAI-compatible chat API with sign-in and admin routes. /metrics is not here: the ops port "
        "(OPS_PORT) serves it.",
        {
            **chat_paths(),
            **auth_paths(),
            **admin_paths(),
            **health_paths("/api/health", "/api/ready", "connected to NATS"),
        },
        [EdgeRequest, EmbeddingsRequest, ResponsesRequest, CacheInvalidation],
    )
