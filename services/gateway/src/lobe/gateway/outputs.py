"""The two ways an answer reaches the client: SSE chunks as they come, or one JSON object.

What the chunks and the object are is the endpoint's (a ChunkSource and an Assembler: chat's in
lobe.gateway.openai_format, the Responses API's in lobe.gateway.responses_output); how they reach
the client is the same for every endpoint, here.

Both take the same calls from the answer loop (lobe.gateway.answer): a delta, a flush, the finish,
or a failure. A failure before the first byte is an HTTP error (raised); after it, an SSE stream
can only end with an OpenAI error event and no `[DONE]`.

SSE chunks are held until the answer loop flushes, which it does whenever the next frame has not
arrived yet: the chunks of frames that arrived together leave in one write (one system call, the
largest cost in the gateway's profile), and a chunk that arrived alone leaves at once.
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from lobe.gateway.metrics import STREAMING_CONNECTIONS
from lobe.shared.events.chat import DoneFrame, UsageFrame
from lobe.shared.events.chat_wire import WireDelta
from lobe.shared.openai_errors import ApiError

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: pass each event through at once
}
WRITE_BATCH_MAX_BYTES = 64 * 1024  # a burst larger than this is written in parts


class Output(Protocol):
    headers: dict[str, str]  # sent with the first byte (SSE) or the whole answer (JSON)

    async def delta(self, frame: WireDelta) -> None: ...

    async def flush(self) -> None:
        """Write what the deltas so far left held: the next frame is not here yet."""
        ...

    async def finish(self, done: DoneFrame, usage: UsageFrame | None) -> web.StreamResponse: ...

    async def fail(self, error: ApiError) -> web.StreamResponse:
        """End the answer with `error`: raised while nothing is sent, else written as an event."""
        ...

    def close(self) -> None:
        """The answer is over, however it ended (the client may have left mid-stream)."""
        ...


class ChunkSource(Protocol):
    """An answer's server-sent events: each delta's, the end's, and an error's after the first
    byte. Each is a list, one item per SSE event (a delta may make none or several: a Responses
    item opening), each held on its own: a resumable output gives every event its own id
    (lobe.gateway.resume.output), and a resume splits kept batches on those ids."""

    def delta(self, frame: WireDelta) -> list[bytes]: ...

    def end(self, done: DoneFrame, usage: UsageFrame | None) -> list[bytes]: ...

    def error(self, error: ApiError) -> list[bytes]: ...


class Assembler(Protocol):
    """An answer gathered into the one JSON object a non-streaming client gets."""

    def add(self, frame: WireDelta) -> None: ...

    def build(self, done: DoneFrame, usage: UsageFrame | None) -> dict[str, Any]: ...


class SseOutput:
    def __init__(self, request: web.Request, writer: ChunkSource, headers: dict[str, str]) -> None:
        self.request = request
        self.writer = writer
        self.headers = headers
        self.response: web.StreamResponse | None = None
        self.closed = False
        self.held: list[bytes] = []  # chunks not yet written (see flush)
        self.held_bytes = 0

    async def _opened(self) -> web.StreamResponse:
        # Prepared on the first output, so that every error before it is a plain HTTP status.
        if self.response is None:
            self.response = web.StreamResponse(headers={**SSE_HEADERS, **self.headers})
            STREAMING_CONNECTIONS.inc()  # counted before prepare: close() may follow a failed one
            await self.response.prepare(self.request)
        return self.response

    async def delta(self, frame: WireDelta) -> None:
        await self._opened()
        for event in self.writer.delta(frame):
            self._hold(event)
        if self.held_bytes >= WRITE_BATCH_MAX_BYTES:
            await self.flush()

    async def flush(self) -> None:
        if self.held and self.response is not None:
            await self._send(self.response, eof=False)

    async def finish(self, done: DoneFrame, usage: UsageFrame | None) -> web.StreamResponse:
        response = await self._opened()
        for event in self.writer.end(done, usage):
            self._hold(event)
        await self._send(response, eof=True)  # with the stream's end: one write
        return response

    async def fail(self, error: ApiError) -> web.StreamResponse:
        if self.response is None:
            raise error
        for event in self.writer.error(error):
            self._hold(event)
        await self._send(self.response, eof=True)
        return self.response

    async def _send(self, response: web.StreamResponse, eof: bool) -> None:
        """Write what is held; `eof`: and end the stream."""
        if eof:
            await response.write_eof(self._take())
        else:
            await response.write(self._take())

    def _hold(self, chunk: bytes) -> None:
        self.held.append(chunk)
        self.held_bytes += len(chunk)

    def _take(self) -> bytes:
        data = b"".join(self.held)
        self.held.clear()
        self.held_bytes = 0
        return data

    def close(self) -> None:
        if self.response is not None and not self.closed:
            self.closed = True
            STREAMING_CONNECTIONS.dec()


class JsonOutput:
    def __init__(self, assembler: Assembler, headers: dict[str, str]) -> None:
        self.assembler = assembler
        self.headers = headers

    async def delta(self, frame: WireDelta) -> None:
        self.assembler.add(frame)

    async def flush(self) -> None:
        pass  # one JSON object, written whole by finish

    async def finish(self, done: DoneFrame, usage: UsageFrame | None) -> web.StreamResponse:
        headers = dict(self.headers)
        if usage is not None and usage.cost_usd is not None:
            headers["X-Lobe-Cost-Usd"] = f"{usage.cost_usd:.6f}"
        return web.json_response(self.assembler.build(done, usage), headers=headers)

    async def fail(self, error: ApiError) -> web.StreamResponse:
        raise error

    def close(self) -> None:
        pass
