"""GET /v1/chat/completions/{request_id}/stream: the rest of a resumable answer, on any replica.

The caller must be the user who asked (anyone else, like an unknown or expired id, gets 404: no
stream is admitted to exist). `Last-Event-ID` (`<request_id>:<n>`, the last id the client read)
picks up after event n; without it the answer replays from its first event. The kept events come
at once, then the rest as the answering replica keeps them, until the stream's last event. Nothing
is admitted, dispatched or billed again: this only reads what the first request's answer wrote.
"""

from __future__ import annotations

import re
import time

from aiohttp import web

from lobe.gateway.auth.assembly import AUTH
from lobe.gateway.openai_format import sse_event
from lobe.gateway.outputs import SSE_HEADERS
from lobe.gateway.redis_pool import REDIS_ERRORS
from lobe.gateway.resources import SETTINGS
from lobe.gateway.resume.store import END, EVENT, RESUME, ResumeStore
from lobe.shared.openai_errors import ApiError

REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
READ_COUNT = 512  # events per read: a long backlog comes in a few writes
# Under REDIS_REPLY_TIMEOUT_S: a blocked read is a reply that takes its time, not an outage.
BLOCK_MS = 500
GONE = ApiError(502, "The answer stopped before it completed; ask again.", "stream_lost")


def not_found(request_id: str) -> ApiError:
    return ApiError(
        404, f"No resumable stream {request_id!r}: unknown, expired, or not yours.", "stream_not_found"
    )


def resumes_after(request: web.Request, request_id: str) -> int:
    """The last event the client has, from Last-Event-ID; 0 without one."""
    last = request.headers.get("Last-Event-ID")
    if last is None:
        return 0
    of, _, seq = last.strip().rpartition(":")
    if of != request_id or not (seq.isascii() and seq.isdigit()) or len(seq) > 9:
        raise ApiError(
            400, f"Last-Event-ID must be `{request_id}:<n>`, an id from this stream.", "invalid_last_event_id"
        )
    return int(seq)


async def resume_stream(request: web.Request) -> web.StreamResponse:
    request_id = request.match_info["request_id"]
    caller = await request.app[AUTH].auth.authenticate(request)
    if not REQUEST_ID.fullmatch(request_id):
        raise not_found(request_id[:64])
    after = resumes_after(request, request_id)
    store = request.app[RESUME]
    try:
        if await store.owner(request_id) != caller.user_id:
            raise not_found(request_id)
        await store.mark_resumed(request_id)  # the answering replica's client-left grace reads it
    except REDIS_ERRORS as exc:
        raise ApiError(503, "Streams cannot be resumed right now.", "resume_unavailable") from exc
    response = web.StreamResponse(headers={**SSE_HEADERS, "X-Request-Id": request_id})
    await response.prepare(request)
    deadline = time.monotonic() + request.app[SETTINGS].request_timeout_s
    await response.write_eof(await _tail(store, request_id, after, response, deadline))
    return response


async def _tail(
    store: ResumeStore, request_id: str, after: int, response: web.StreamResponse, deadline: float
) -> bytes:
    """Write the events after `after` as they are kept; returns what ends the stream (b"" after
    its last event, else an error event)."""
    last: bytes | str = f"{after}-0"  # entries are numbered by their last event
    try:
        while time.monotonic() < deadline:
            entries = await store.read(request_id, last, READ_COUNT, BLOCK_MS)
            if not entries:
                if await store.owner(request_id) is None:  # expired: its writer is gone
                    return sse_event(GONE.body())
                continue
            batches = [fields[EVENT] for _, fields in entries]
            batches[0], after = events_after(batches[0], after), 0  # only the first may hold older ones
            await response.write(b"".join(batches))
            last_id, last_fields = entries[-1]
            if END in last_fields:
                return b""
            last = last_id
    except REDIS_ERRORS:
        return sse_event(GONE.body())
    return sse_event(ApiError(504, "The model did not finish within the request timeout.", "timeout").body())


def events_after(batch: bytes, after: int) -> bytes:
    """The events of a kept batch past event `after`: a batch is what one write kept, and the
    client may have read part of it. Each event opens with `id: <request_id>:<n>`."""
    if after == 0:
        return batch
    events = batch.split(b"\n\n")  # JSON data holds no raw newline: a blank line ends an event
    return b"".join(e + b"\n\n" for e in events if e and int(e[: e.index(b"\n")].rpartition(b":")[2]) > after)
