"""OpenAPI 3.1 documents of the suite's HTTP APIs, built from the same pydantic models that
validate the requests, and served beside the routes they describe (GET /openapi.json).

Each service describes its own routes (lobe.gateway.openapi, lobe.billing.openapi);
`python -m lobe.devtools.openapi` writes them to docs/openapi/, where a test holds each to the
routes the application really registers and schemathesis fuzzes the running suite with them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

Document = dict[str, Any]
OPENAPI_PATH = "/openapi.json"
REF = "#/components/schemas/{model}"
ERROR = {"$ref": REF.format(model="Error")}
STATUS = {"type": "object", "properties": {"status": {"enum": ["ok", "unavailable"]}}}

# OpenAI's error body (lobe.shared.openai_errors.ApiError.body): what every error answer carries.
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
REASONS = {
    400: "Invalid request (OpenAI's error format names the field as `param`).",
    401: "Missing or invalid credentials.",
    403: "The credentials may not do this.",
    404: "Not found, or not configured here.",
    405: "Method not allowed.",
    409: "Conflicts with what exists; nothing changed.",
    413: "Request body too large.",
    429: "A limit was reached.",
    502: "An upstream failed mid-answer.",
    503: "A dependency is unavailable; retry shortly.",
    504: "The answer did not finish in time.",
}


def document(
    title: str, version: str, description: str, paths: dict[str, Any], models: Iterable[type[BaseModel]]
) -> Document:
    """The whole document: `paths`, the JSON Schemas of `models` and the error body as components."""
    _, schemas = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    components = {**schemas.get("$defs", {}), "Error": ERROR_SCHEMA}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def operation(
    summary: str,
    ok: dict[str, Any],
    errors: Iterable[int] = (),
    *,
    body: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    secured: bool = True,
) -> dict[str, Any]:
    """One operation: its 2xx/3xx answers (`ok`) and its error statuses in OpenAI's format."""
    op: dict[str, Any] = {"summary": summary, "responses": {**ok, **error_responses(errors)}}
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    op["security"] = [{"bearer": []}] if secured else []
    return op


def error_responses(statuses: Iterable[int]) -> dict[str, Any]:
    content = {"application/json": {"schema": ERROR}}
    return {str(s): {"description": REASONS[s], "content": content} for s in sorted(set(statuses))}


def json_answer(description: str, schema: dict[str, Any] | None = None, status: int = 200) -> dict[str, Any]:
    return {
        str(status): {
            "description": description,
            "content": {"application/json": {"schema": schema or {"type": "object"}}},
        }
    }


def parameter(name: str, where: str, description: str) -> dict[str, Any]:
    """A string parameter `in` path (required) or query (optional)."""
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": {"type": "string"},
    }


def health_paths(live: str, ready: str, ready_means: str) -> dict[str, Any]:
    """Liveness, readiness (`ready_means`: what it checks) and this document, unauthenticated."""
    answers = {**json_answer("Ready.", STATUS), **json_answer("Not ready.", STATUS, status=503)}
    return {
        live: {"get": operation("Liveness.", json_answer("Alive.", STATUS), secured=False)},
        ready: {"get": operation(f"Readiness: {ready_means}.", answers, secured=False)},
        OPENAPI_PATH: {"get": operation("This document.", json_answer("OpenAPI 3.1."), secured=False)},
    }


def model_ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def serve_openapi(app: web.Application, doc: Document) -> None:
    """GET /openapi.json: the document, as the service was built."""

    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(doc)

    app.router.add_get(OPENAPI_PATH, openapi)
