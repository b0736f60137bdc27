"""POST /v1/audio/transcriptions: a multipart upload (up to the provider's 25 MB) transcribed.

The file part is streamed into the JetStream Object Store chunk by chunk as it arrives (the
bucket MEDIA, named by the request id: lobe.shared.bus.objects), never held whole; the other
fields are validated as OpenAI does. Then the edge as for every endpoint (the token window on the
prompt, the budget hold: the file's longest possible duration, docs/media.md), and a worker on
`transcription.request` streams the object to the provider and deletes it. An upload that never
reaches a worker is deleted here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web
from pydantic import ValidationError

from lobe.gateway.accounting import Accounting
from lobe.gateway.json_request import too_large
from lobe.gateway.resources import RESOURCES
from lobe.gateway.route_headers import route_headers
from lobe.gateway.worker_request import ask_workers, deadline_ms, failed, media_endpoint, no_answer
from lobe.shared.bus.objects import CHUNK_BYTES, delete_object, put_stream
from lobe.shared.events.media import TRANSCRIPTION_REQUEST, TranscriptionAnswer, TranscriptionRequested
from lobe.shared.media_schema import MAX_TRANSCRIPTION_BYTES, TranscriptionRequest
from lobe.shared.openai_errors import ApiError, invalid_request

FIELDS = frozenset({"model", "language", "prompt", "response_format", "temperature"})
MAX_FIELD_BYTES = 32 * 1024


async def transcriptions(request: web.Request) -> web.StreamResponse:
    return await media_endpoint("transcriptions", request, _transcriptions)


def _bad(message: str, param: str) -> ApiError:
    return ApiError(400, message, "invalid_request", param=param)


async def _file_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    size = 0
    while chunk := await part.read_chunk(CHUNK_BYTES):
        size += len(chunk)
        if size > MAX_TRANSCRIPTION_BYTES:
            raise too_large(size, MAX_TRANSCRIPTION_BYTES)
        yield chunk


async def _next_part(reader: MultipartReader) -> MultipartReader | BodyPartReader | None:
    """The next part, or None at the end; a body that is not the multipart it says is the client's
    mistake (aiohttp raises ValueError or AssertionError on a broken boundary or headers)."""
    try:
        return await reader.next()
    except (ValueError, AssertionError):
        raise _bad("The body is not well-formed multipart/form-data.", "file") from None


async def _form(request: web.Request, object_name: str) -> tuple[dict[str, Any], int]:
    """The form's fields, and the file's size once it is stored under `object_name`."""
    if not request.content_type.startswith("multipart/form-data"):
        raise _bad("Send the audio as multipart/form-data with a `file` part.", "file")
    js = request.app[RESOURCES].bus.js
    try:
        reader = await request.multipart()
    except ValueError:  # aiohttp: no boundary in the Content-Type
        raise _bad("The multipart/form-data Content-Type has no boundary.", "file") from None
    fields: dict[str, Any] = {}
    file_bytes: int | None = None
    while (part := await _next_part(reader)) is not None:
        if not isinstance(part, BodyPartReader):
            raise _bad("A nested multipart part is not accepted.", "file")
        if part.name == "file" and file_bytes is None:
            fields["filename"] = (part.filename or "audio")[:256]
            file_bytes = await put_stream(js, object_name, _file_chunks(part))
        elif part.name in FIELDS:
            value = await part.read(decode=True)
            if len(value) > MAX_FIELD_BYTES:
                raise _bad(f"The field '{part.name}' is too long.", part.name)
            fields[part.name] = value.decode("utf-8", "replace")
        else:
            await part.release()  # OpenAI's other fields (timestamp_granularities[], ...): ignored
    if not file_bytes:
        raise _bad("The `file` part is missing or empty.", "file")
    if "temperature" in fields:
        try:
            fields["temperature"] = float(fields["temperature"])
        except ValueError:
            raise _bad("Invalid value for 'temperature': not a number.", "temperature") from None
    return fields, file_bytes


async def _transcriptions(request: web.Request, account: Accounting) -> web.Response:
    resources = request.app[RESOURCES]
    await account.admit(request)  # the request window before a byte of the upload is stored
    name = account.request_id
    handed_over = False
    try:
        fields, file_bytes = await _form(request, name)
        try:
            body = TranscriptionRequest.model_validate(
                {**fields, "file_bytes": file_bytes, "audio_object": name}
            )
        except ValidationError as exc:
            raise invalid_request(exc) from None
        await account.admit_tokens(request, body)
        body = await account.reserve(request, body)
        event = TranscriptionRequested(
            request_id=account.request_id,
            caller=account.caller,
            body=body,
            deadline_ms=deadline_ms(resources),
        )
        handed_over = True  # the worker that takes it deletes the object
        reply = await ask_workers(resources, TRANSCRIPTION_REQUEST, event)
    finally:
        if not handed_over:
            await delete_object(resources.bus.js, name)
    headers = {"X-Request-Id": account.request_id}
    if not isinstance(reply, TranscriptionAnswer):
        raise no_answer(account, resources.settings.request_timeout_s, "transcription")
    account.media_answered()
    headers |= route_headers(reply.route, resources.settings.expose_deployment_names)
    if reply.error is not None:
        raise failed(reply.error, headers)
    return web.Response(text=reply.content, content_type=reply.content_type, headers=headers)
