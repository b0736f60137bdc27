"""POST /v1/audio/speech: the audio streamed to the client as the provider sends it.

The edge as for every endpoint (auth, the rate limits, the budget hold: the input's characters at
the dearest upstream's price). Then the gateway listens on `speech.audio.<request_id>`, asks a
worker on `speech.request`, and writes each chunk to the response as it arrives; the worker's reply
comes after the last chunk and says how many there were. A failure before the first byte is
OpenAI's error JSON; after it, the connection is cut (no terminating chunk), so no client takes a
shortened file for a whole one.
"""

from __future__ import annotations

import asyncio
import base64

from aiohttp import web

from lobe.gateway.accounting import Accounting
from lobe.gateway.request_body import parse_speech_body
from lobe.gateway.resources import RESOURCES
from lobe.gateway.route_headers import route_headers
from lobe.gateway.worker_request import admitted_event, ask_workers, failed, media_endpoint, no_answer
from lobe.shared.bus.listen import listen
from lobe.shared.events.media import SPEECH_AUDIO, SPEECH_REQUEST, SpeechChunk, SpeechEnded, SpeechRequested
from lobe.shared.openai_errors import ApiError

# After the reply, the chunks it counts that have not arrived yet get this long (core NATS keeps
# one publisher's order, so they are in flight already or lost).
LATE_CHUNK_S = 2.0


class AudioCut(Exception):
    """The audio broke off after bytes reached the client: the response must not end cleanly."""


async def _play(
    request: web.Request,
    response: web.StreamResponse | None,
    headers: dict[str, str],
    chunk: object,
    seq: int,
) -> web.StreamResponse:
    """Write the chunk due next (the response started on the first), or cut the audio."""
    if not isinstance(chunk, SpeechChunk) or chunk.seq != seq:
        raise AudioCut(f"chunk {seq} never came in order")
    if response is None:
        response = web.StreamResponse(status=200, headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
    await response.write(base64.b64decode(chunk.audio))
    return response


async def speech(request: web.Request) -> web.StreamResponse:
    return await media_endpoint("speech", request, _speech)


async def _speech(request: web.Request, account: Accounting) -> web.StreamResponse:
    resources = request.app[RESOURCES]
    event = await admitted_event(request, account, parse_speech_body, SpeechRequested)
    listening = await listen(resources.bus.connection, SPEECH_AUDIO, request_id=account.request_id)
    asked = asyncio.ensure_future(ask_workers(resources, SPEECH_REQUEST, event))
    response: web.StreamResponse | None = None
    headers = {"X-Request-Id": account.request_id, "Content-Type": event.body.media_type}
    written = 0
    try:
        while True:
            getting = asyncio.ensure_future(listening.queue.get())
            await asyncio.wait({getting, asked}, return_when=asyncio.FIRST_COMPLETED)
            if not getting.done():
                getting.cancel()
                break
            response = await _play(request, response, headers, getting.result(), written)
            written += 1
        reply = asked.result()
        if isinstance(reply, SpeechEnded):
            account.media_answered()
        if not isinstance(reply, SpeechEnded):
            if response is None:
                raise no_answer(account, resources.settings.request_timeout_s, "speech")
            raise AudioCut("no worker reply")
        headers |= route_headers(reply.route, resources.settings.expose_deployment_names)
        if reply.error is not None and response is None:
            headers.pop("Content-Type")
            raise failed(reply.error, headers)
        if reply.error is not None:
            raise AudioCut(reply.error.message)
        while written < reply.chunks:
            late = await listening.next(LATE_CHUNK_S)
            response = await _play(request, response, headers, late, written)
            written += 1
        if response is None:  # an empty audio file
            response = web.StreamResponse(status=200, headers=headers)
            await response.prepare(request)
        await response.write_eof()
        return response
    except AudioCut as exc:
        if response is None:  # nothing sent yet: the client can still read an error
            raise ApiError(502, f"The audio broke off: {exc}", "upstream_disconnected") from None
        # Bytes are out: cut the connection so the client sees a broken transfer, not a short file.
        if request.transport is not None:
            request.transport.close()
        return response
    finally:
        if not asked.done():
            asked.cancel()
        await listening.close()
