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
from lobe.shared.media_schema import ImagesRequest, SpeechRequest
from lobe.shared.openapi import Document, document, health_paths, json_answer, model_ref, operation, parameter

# Billing's admin API, forwarded for admin sessions (docs/openapi/billing.json describes bodies).
FORWARDED_ADMIN = {
    "/v1/admin/users": {
        "get": "Find users by part of their id or e-mail (`q`).",
        "post": "Create a user (or move it to a plan).",
    },
    "/v1/admin/users/{user_id}/keys": {
        "get": "A user's API keys: prefix, name, created, last used, revoked.",
        "post": "Issue an API key; the key is in this answer only.",
    },
    "/v1/admin/users/{user_id}/role": {"put": "Make a user an admin, or not."},
    "/v1/admin/users/{user_id}/usage": {"get": "A user's usage report."},
    "/v1/admin/users/{user_id}/usage/limits": {"get": "A user's limits and what is left."},
    "/v1/admin/users/{user_id}/usage/suggestions": {"get": "Ways for a user to spend less."},
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
        "/v1/images/generations": {
            "post": operation(
                "Create images (OpenAI's API): `n` images as b64_json or url; priced per image by "
                "size and quality (docs/media.md).",
                json_answer("`{created, data: [{b64_json | url, revised_prompt}]}`."),
                (400, 401, 404, 429, 502, 503, 504),
                body=model_ref(ImagesRequest),
            )
        },
        "/v1/audio/speech": {
            "post": operation(
                "Create speech (OpenAI's API): the audio file in `response_format`, streamed as the "
                "provider sends it; priced per character.",
                json_answer("The audio bytes (audio/mpeg, audio/wav, audio/pcm, ...)."),
                (400, 401, 404, 429, 502, 503, 504),
                body=model_ref(SpeechRequest),
            )
        },
        "/v1/audio/transcriptions": {
            "post": operation(
                "Create a transcription (OpenAI's API): a multipart/form-data upload (`file` up to "
                "25 MB, `model`, `language`, `prompt`, `response_format`: json, text, srt, "
                "verbose_json, vtt, `temperature`); priced per second of audio.",
                json_answer("The transcript in `response_format`."),
                (400, 401, 404, 413, 429, 502, 503, 504),
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


def account_paths() -> dict[str, Any]:
    """The caller's own keys and usage (a session or an API key), and the console's pages."""
    period = parameter(
        "period", "query", "A period key (2026-11, or 2026-11.1 after a reset); default: the current one."
    )
    report = {
        "/v1/usage": "The caller's usage in a period: totals, byProvider, byModel, periods, days.",
        "/v1/usage/limits": "The caller's plan limits and what is left.",
        "/v1/usage/suggestions": "Ways for the caller to spend less.",
    }
    paths: dict[str, Any] = {
        path: {
            "get": operation(
                summary + " (billing's report)",
                json_answer("The report."),
                (400, 401, 404, 503),
                parameters=[period],
            )
        }
        for path, summary in report.items()
    }
    paths["/v1/keys"] = {
        "get": operation(
            "The caller's API keys (prefix, name, created, last used) and the plan's cap on live keys.",
            json_answer("A list of api_key objects, with `max_api_keys`."),
            (401, 503),
        ),
        "post": operation(
            "Create an API key for the caller; the key is in this answer only. 403 "
            "`key_limit_reached` past the plan's `max_api_keys` live keys.",
            json_answer("The api_key object with its `key`.", status=201),
            (400, 401, 403, 404, 503),
            body={"type": "object", "properties": {"name": {"type": "string", "maxLength": 100}}},
        ),
    }
    paths["/v1/keys/{key_id}"] = {
        "delete": operation(
            "Revoke one of the caller's API keys, on every gateway.",
            json_answer("Revoked."),
            (401, 403, 404, 503),
            parameters=[parameter("key_id", "path", "The key's id.")],
        )
    }
    html = {"200": {"description": "An HTML page.", "content": {"text/html": {"schema": {"type": "string"}}}}}
    pages = {
        "/console": "The console: sends a signed-in browser to its keys, anyone else to sign in.",
        "/console/sign-in": "The console's sign-in page: one link per configured provider.",
        "/console/keys": "The signed-in user's API keys: create, copy once, revoke.",
        "/console/usage": "The signed-in user's usage, a chart per day, limits and suggestions.",
        "/console/playground": "Send a prompt to a model and watch the answer stream, with its cost.",
        "/console/admin/users": "Admins: find users, set their plan and role, reset their usage.",
        "/console/admin/users/{user_id}": "Admins: a user's limits (override them) and keys (revoke them).",
        "/console/admin/models": "Admins: the routed models, their deployments' health, recent refusals.",
    }
    for path, summary in pages.items():
        params = [USER_ID] if "{user_id}" in path else None
        paths[path] = {"get": operation(summary, html, (401, 403), parameters=params, secured=False)}
    static = {
        "200": {
            "description": "The file.",
            "content": {
                "text/javascript": {"schema": {"type": "string"}},
                "text/css": {"schema": {"type": "string"}},
            },
        }
    }
    paths["/console/static/{name}"] = {
        "get": operation(
            "The console's script (console.js) and stylesheet (console.css).",
            static,
            (404,),
            parameters=[parameter("name", "path", "console.js or console.css.")],
            secured=False,
        )
    }
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
            **account_paths(),
            **health_paths("/api/health", "/api/ready", "connected to NATS"),
        },
        [EdgeRequest, EmbeddingsRequest, ResponsesRequest, ImagesRequest, SpeechRequest, CacheInvalidation],
    )
