"""OpenAI's images answer written as it is read from the MEDIA bucket, for images too large for the
worker's reply (`b64_object`: the provider's b64_json text, one object per image). The gateway
holds one chunk at a time whatever the images' size, and deletes each object afterwards.

Nothing is sent before the first object's first chunk is in hand, so an object already lost is
still OpenAI's error JSON (502); one that breaks off later cuts the connection (no terminating
chunk), as a speech answer does, so no client takes a truncated JSON for a whole one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from lobe.shared.bus import Bus
from lobe.shared.bus.objects import ObjectLost, delete_object, read_stream
from lobe.shared.events.media import ImagesAnswer
from lobe.shared.openai_errors import ApiError

log = logging.getLogger(__name__)
# What a stored image can fail with mid-read: gone or damaged, or not base64's ASCII.
LOST = (ObjectLost, UnicodeDecodeError)


async def _pieces(reply: ImagesAnswer, bus: Bus) -> AsyncIterator[bytes]:
    """The JSON answer in pieces, each (but the last) ending with a chunk of an object."""
    pending = f'{{"created": {reply.created}, "data": ['
    for index, image in enumerate(reply.images):
        fields = image.model_dump(exclude_none=True, exclude={"b64_object"})
        pending += ", " if index else ""
        if image.b64_object is None:
            pending += json.dumps(fields)
            continue
        pending += '{"b64_json": "'
        async for chunk in read_stream(bus.js, image.b64_object):
            # Escaped as JSON all the same: the text is the provider's, whatever it holds.
            yield (pending + json.dumps(chunk.decode("ascii"))[1:-1]).encode()
            pending = ""
        rest = json.dumps(fields)[1:-1]
        pending += '"' + (", " + rest if rest else "") + "}"
    yield (pending + "]}").encode()


async def stream_images(
    request: web.Request, reply: ImagesAnswer, headers: dict[str, str], bus: Bus
) -> web.StreamResponse:
    pieces = _pieces(reply, bus)
    try:
        try:
            first = await anext(pieces)
        except LOST as exc:
            log.warning("stored images lost: %s", exc, extra={"request_id": reply.request_id})
            raise ApiError(
                502, "The generated images were lost on their way.", "upstream_disconnected"
            ) from None
        response = web.StreamResponse(status=200, headers={**headers, "Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(first)
        try:
            async for piece in pieces:
                await response.write(piece)
        except LOST as exc:
            log.warning("stored images broke off: %s", exc, extra={"request_id": reply.request_id})
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response
    finally:
        await pieces.aclose()  # type: ignore[attr-defined]
        for image in reply.images:
            if image.b64_object:
                await delete_object(bus.js, image.b64_object)
