"""A fake provider: replays a recorded body byte for byte over real HTTP/1.1 on loopback.

Raw asyncio rather than aiohttp.web so that the caller controls every byte on the wire: the body
goes out as many small HTTP chunks (random sizes, so splits land inside lines and inside UTF-8
sequences), a reply can stall before its first byte, trickle, go silent mid-body, or be cut off
without the terminating chunk. It records each request (to assert the translated request) with its
arrival time (to assert when retries and probes came), and the moment the client closed the
connection (to assert that cancellation reaches the provider). A `schedule` picks the reply by the
request's number (fail the first three, then answer; fail every request; ...).

Used by the adapter tests and the end-to-end tests; the transcripts it replays are found with
`lobe.devtools.provider_fixtures`. Load tests use `lobe.devtools.loadtest.upstream`, built for speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from lobe.devtools.ports import LOOPBACK


@dataclass
class Reply:
    body: bytes
    status: int = 200
    content_type: str = "text/event-stream"
    headers: dict[str, str] = field(default_factory=dict)
    max_chunk: int = 16
    seed: int = 0
    first_byte_delay_s: float = 0.0
    cut_after: int | None = None  # abort (no terminating chunk) after this many body bytes
    hold_after: int | None = None  # go silent after this many body bytes, until the client leaves
    chunk_delay_s: float = 0.0  # pause between chunks (a slow model), watching for the client leaving
    split_events: bool = False  # one HTTP chunk per SSE event / NDJSON line instead of random sizes
    # Hold the body's last chunk until this is set: a test sets it once its client has read the
    # first bytes, which proves they came before the upstream's last (no clock involved).
    release_last: asyncio.Event | None = None


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float = 0.0  # wall clock (time.time()) when the request arrived: comparable across processes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


Schedule = Callable[[int], "Reply | None"]
Answer = Callable[["Recorded"], "Reply | None"]


class FakeUpstream:
    """Replies are served in push order; once they run out, `default` (if set) answers every request.

    `schedule(n)`, when given, is asked first for the n-th request's reply (0-based); None falls
    through to the pushed replies and the default. `answer(request)`, when given, is asked before
    all of them: a reply computed from the request (lobe.devtools.fake_embeddings), or None.
    """

    def __init__(
        self, default: Reply | None = None, schedule: Schedule | None = None, answer: Answer | None = None
    ) -> None:
        self.default = default
        self.schedule = schedule
        self.answer = answer
        self.replies: deque[Reply] = deque()
        self.requests: list[Recorded] = []
        self.closed_at: list[float] = []
        self.client_closed = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    async def start(self, port: int = 0) -> FakeUpstream:
        """Listen on `port` (0: any free one); a fixed port lets a process started before this
        test's event loop (a module's `lobe dev`) be configured with the URL in advance."""
        self._server = await asyncio.start_server(self._serve, LOOPBACK, port)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://{LOOPBACK}:{port}"
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    def push(self, reply: Reply) -> None:
        self.replies.append(reply)

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._exchange(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            self._mark_closed()
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await _read_body(reader, headers)
        parts = urlsplit(target)
        number = len(self.requests)
        self.requests.append(
            Recorded(method, parts.path, dict(parse_qsl(parts.query)), headers, body, time.time())
        )
        computed = self.answer(self.requests[-1]) if self.answer else None
        reply = computed or self._reply_for(number)
        if reply.first_byte_delay_s and await self._client_left_within(reader, reply.first_byte_delay_s):
            return
        head_out = [f"HTTP/1.1 {reply.status} X", f"Content-Type: {reply.content_type}"]
        head_out += ["Transfer-Encoding: chunked", "Connection: close"]
        head_out += [f"{k}: {v}" for k, v in reply.headers.items()]
        writer.write(("\r\n".join(head_out) + "\r\n\r\n").encode("latin-1"))
        stop_at = reply.cut_after if reply.cut_after is not None else reply.hold_after
        end = len(reply.body) if stop_at is None else min(stop_at, len(reply.body))
        pieces = list(_pieces(reply, end))
        for index, piece in enumerate(pieces):
            if reply.release_last is not None and index == len(pieces) - 1:
                await reply.release_last.wait()
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            if reply.chunk_delay_s:
                if await self._client_left_within(reader, reply.chunk_delay_s):
                    return
            else:
                await asyncio.sleep(0)  # let the client read: more, smaller reads on its side
        if reply.cut_after is not None:
            writer.transport.abort()
            return
        if reply.hold_after is not None:
            await self._client_left_within(reader, 3600)
            return
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    def _reply_for(self, number: int) -> Reply:
        scheduled = self.schedule(number) if self.schedule else None
        if scheduled is not None:
            return scheduled
        return self.replies.popleft() if self.replies else self.default or NO_REPLY

    async def _client_left_within(self, reader: asyncio.StreamReader, seconds: float) -> bool:
        """Wait up to `seconds`; True (and record when) if the client closed meanwhile."""
        try:
            async with asyncio.timeout(seconds):
                data = await reader.read(1)
        except TimeoutError:
            return False
        except ConnectionError:
            data = b""
        if not data:
            self._mark_closed()
            return True
        return False

    def _mark_closed(self) -> None:
        # The loop's clock is time.monotonic(): comparable with the caller's own timestamps.
        self.closed_at.append(asyncio.get_running_loop().time())
        self.client_closed.set()


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    """The request's body: by Content-Length, or as HTTP/1.1 chunks (what aiohttp sends for a
    streamed body, a multipart upload read from an async iterator), the trailers dropped."""
    if "chunked" not in headers.get("transfer-encoding", "").lower():
        return await reader.readexactly(int(headers.get("content-length", "0")))
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)  # a chunk extension is ignored
        if size == 0:
            break
        body += await reader.readexactly(size)
        await reader.readexactly(2)  # the chunk's CRLF
    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, then the blank line
        pass
    return bytes(body)


NO_REPLY = Reply(b'{"error":"no reply queued"}', 500, "application/json")


def _pieces(reply: Reply, end: int) -> Iterator[bytes]:
    """The first `end` body bytes as the chunks to send."""
    data = reply.body[:end]
    if reply.split_events:
        for part in re.split(rb"(?<=\n\n)|(?<=\r\n\r\n)" if b"\n\n" in data else rb"(?<=\n)", data):
            if part:
                yield part
        return
    rng = random.Random(reply.seed)
    sent = 0
    while sent < end:
        piece = data[sent : sent + rng.randint(1, reply.max_chunk)]
        yield piece
        sent += len(piece)


@contextlib.asynccontextmanager
async def upstreams(*defaults: Reply | None, port: int = 0) -> AsyncIterator[list[FakeUpstream]]:
    """One started fake upstream per default reply (None: only what a test pushes), all stopped after;
    `port`: the first one's (0: a free one)."""
    started: list[FakeUpstream] = []
    try:
        for index, default in enumerate(defaults):
            started.append(await FakeUpstream(default=default).start(port if index == 0 else 0))
        yield started
    finally:
        for upstream in started:
            await upstream.stop()
