"""OpenAI-format errors for every HTTP API of the suite (the gateway's, billing's usage API): one
`ApiError`, one middleware, so SDKs map every error to the same exception classes."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import ValidationError

log = logging.getLogger(__name__)

# The `type` OpenAI uses for each status, so SDKs map them to the right exception class.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    499: "request_cancelled",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


@dataclass
class ApiError(Exception):
    """An error the client sees: HTTP status plus OpenAI's error body."""

    status: int
    message: str
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": ERROR_TYPES.get(self.status, "server_error"),
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> web.Response:
        # ensure_ascii: any text, even one holding a lone surrogate, encodes (as an escape).
        return web.json_response(self.body(), status=self.status, headers=self.headers, dumps=json.dumps)


@web.middleware
async def openai_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn ApiError and aiohttp's own HTTP errors (404 route, 405, 413) into OpenAI's format; a
    bug of ours too (logged, with its traceback), so that every error a client reads has one shape."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ApiError as exc:
        return exc.response()
    except web.HTTPRequestEntityTooLarge as exc:
        return ApiError(413, f"Request body too large: {exc.text}", "request_too_large").response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return ApiError(exc.status, exc.reason, code=exc.reason.lower().replace(" ", "_")).response()
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return ApiError(500, "The server failed to process the request.", "internal_error").response()


def bearer_token(request: web.Request) -> str | None:
    """The token of an `Authorization: Bearer …` header, or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def invalid_request(exc: ValidationError) -> ApiError:
    """A 400 naming the first invalid field (dotted path) as OpenAI's `param`."""
    first = exc.errors()[0]
    param = ".".join(str(part) for part in first["loc"]) or None
    return ApiError(
        400, f"Invalid value for '{param or 'body'}': {first['msg']}", "invalid_request", param=param
    )
