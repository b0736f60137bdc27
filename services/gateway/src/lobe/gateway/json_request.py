"""Request bodies at the gateway: JSON only, and never more than the gateway can pass on.

The limit is MAX_BODY_BYTES or what one NATS message carries (the server's max_payload, less the
chat request event's envelope), whichever is less: a chat body over the bus's limit could be
admitted, rate-limited and held against the budget only to fail at the dispatch. A declared
Content-Length over the limit is refused before a byte is read (`refuse_oversized`, ahead of the
routes); a chunked body is read only up to the limit. A route that takes JSON refuses any other
Content-Type with 415, and parses strictly (lobe.shared.json_body).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lobe.gateway.resources import RESOURCES
from lobe.shared.json_body import is_json, parse_json_object
from lobe.shared.media_schema import MAX_TRANSCRIPTION_BYTES
from lobe.shared.openai_errors import ApiError

# What ChatRequested adds around the client's body: ids, the caller, the reply subject, and the
# body's unset fields written as nulls (measured: ~700 bytes for a one-message body).
BUS_ENVELOPE_BYTES = 4096


# An upload travels through the object store, not in one message (lobe.gateway.transcriptions):
# its limit is the provider's 25 MB plus the form's other fields and boundaries.
UPLOAD_PATHS = frozenset({"/v1/audio/transcriptions"})
FORM_OVERHEAD_BYTES = 64 * 1024


def body_limit(request: web.Request) -> int:
    resources = request.app[RESOURCES]
    if request.path in UPLOAD_PATHS:
        return MAX_TRANSCRIPTION_BYTES + FORM_OVERHEAD_BYTES
    return min(resources.settings.max_body_bytes, resources.bus.connection.max_payload - BUS_ENVELOPE_BYTES)


def too_large(size: int, limit: int) -> ApiError:
    return ApiError(
        413,
        f"The request body is {size} bytes or more; this gateway accepts at most {limit} bytes, "
        "the least of its body limit and what one message on its message bus carries "
        "(send smaller images or fewer messages).",
        "request_too_large",
    )


@web.middleware
async def refuse_oversized(request: web.Request, handler: Any) -> web.StreamResponse:
    """A declared Content-Length over the limit: 413 at once, before authentication or a read."""
    declared = request.content_length
    if declared is not None and declared > (limit := body_limit(request)):
        raise too_large(declared, limit)
    response: web.StreamResponse = await handler(request)
    return response


async def read_body(request: web.Request) -> bytes:
    """The whole body, or 413 as soon as more than the limit has arrived (a chunked body is cut
    there, not buffered to its end)."""
    limit = body_limit(request)
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise too_large(len(body), limit)
    return bytes(body)


def require_json(request: web.Request) -> None:
    """415 for a body (or a declared Content-Type) that is not JSON."""
    content_type = request.headers.get("Content-Type")
    if (request.body_exists or content_type is not None) and not is_json(content_type):
        raise ApiError(
            415,
            f"Unsupported Content-Type {content_type or '(none)'!r}: send the body as "
            "'Content-Type: application/json'.",
            "unsupported_media_type",
        )


async def read_json_object(request: web.Request, default: bytes = b"") -> dict[str, Any]:
    """The body as a strict JSON object; `default` stands for an empty body (b"{}": all optional)."""
    require_json(request)
    return parse_json_object(await read_body(request) or default)
