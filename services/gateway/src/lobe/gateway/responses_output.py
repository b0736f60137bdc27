"""The two ways a Responses answer reaches the client (the answer loop's Output, lobe.gateway.outputs):
server-sent events (`event: <type>` and its JSON, no `[DONE]`: OpenAI's Responses stream ends with
its `response.completed`), or the one `response` object.

Kept apart from the chat completion's SSE writer: only the events differ; the transport rules
are the same (opened on the first byte so an earlier error is a plain HTTP status; what arrives
together is written together at the answer loop's flush).
"""

from __future__ import annotations

import json

from aiohttp import web

from lobe.gateway.metrics import STREAMING_CONNECTIONS
from lobe.gateway.outputs import SSE_HEADERS, WRITE_BATCH_MAX_BYTES
from lobe.gateway.responses_format import Event, ResponseEvents
from lobe.shared.events.chat import DeltaFrame, DoneFrame, UsageFrame
from lobe.shared.openai_errors import ApiError

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def sse(events: list[Event]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {_dumps(e)}\n\n".encode() for e in events)


class ResponsesSseOutput:
    def __init__(self, request: web.Request, events: ResponseEvents, headers: dict[str, str]) -> None:
        self.request = request
        self.events = events
        self.headers = headers
        self.response: web.StreamResponse | None = None
        self.closed = False
        self.held = bytearray()  # events not yet written (see flush)

    async def _opened(self) -> web.StreamResponse:
        if self.response is None:
            self.response = web.StreamResponse(headers={**SSE_HEADERS, **self.headers})
            STREAMING_CONNECTIONS.inc()  # counted before prepare: close() may follow a failed one
            await self.response.prepare(self.request)
        return self.response

    async def delta(self, frame: DeltaFrame) -> None:
        await self._opened()
        self.held += sse(self.events.delta(frame))
        if len(self.held) >= WRITE_BATCH_MAX_BYTES:
            await self.flush()

    async def flush(self) -> None:
        if self.held and self.response is not None:
            await self.response.write(self._take())

    async def finish(self, done: DoneFrame, usage: UsageFrame | None) -> web.StreamResponse:
        response = await self._opened()
        self.held += sse(self.events.finish(done, usage))
        await response.write_eof(self._take())
        return response

    async def fail(self, error: ApiError) -> web.StreamResponse:
        if self.response is None:
            raise error
        self.held += sse(self.events.fail(error))
        await self.response.write_eof(self._take())
        return self.response

    def _take(self) -> bytes:
        data = bytes(self.held)
        self.held.clear()
        return data

    def close(self) -> None:
        if self.response is not None and not self.closed:
            self.closed = True
            STREAMING_CONNECTIONS.dec()


class ResponsesJsonOutput:
    def __init__(self, events: ResponseEvents, headers: dict[str, str]) -> None:
        self.events = events
        self.headers = headers

    async def delta(self, frame: DeltaFrame) -> None:
        self.events.delta(frame)  # the events are not sent: the response object gathers the output

    async def flush(self) -> None:
        pass

    async def finish(self, done: DoneFrame, usage: UsageFrame | None) -> web.StreamResponse:
        headers = dict(self.headers)
        if usage is not None and usage.cost_usd is not None:
            headers["X-Lobe-Cost-Usd"] = f"{usage.cost_usd:.6f}"
        response = self.events.finish(done, usage)[-1]["response"]
        return web.json_response(response, headers=headers)

    async def fail(self, error: ApiError) -> web.StreamResponse:
        raise error

    def close(self) -> None:
        pass
