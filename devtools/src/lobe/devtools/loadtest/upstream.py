"""A fast fake OpenAI Chat Completions server for load tests: `python -m lobe.devtools.loadtest.upstream`.

Unlike `lobe.devtools.fake_upstream` (byte-exact replays of recorded transcripts, one connection
per request, for the adapter tests), this one is built not to be the bottleneck: an asyncio
Protocol with HTTP/1.1 keep-alive, answers encoded once per model and written in one call when
they are not paced. Its answer is `lobe.devtools.loadtest.shape.Shape`: a role chunk, `chunks`
content deltas (the first after `ttft_s`, then one every 1/`tokens_per_s`), a `stop` finish chunk,
a usage chunk and `[DONE]`. `"stream": false` gets the same answer as one JSON object.

`GET /health` answers 200 (readiness); `GET /stats` counts the requests served.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from lobe.devtools.loadtest.shape import Shape
from lobe.devtools.loadtest.wire import Answers, response
from lobe.devtools.ports import LOOPBACK
from lobe.shared.process import stop_requested

MAX_HEAD = 64 * 1024


class Counters:
    def __init__(self) -> None:
        self.requests = 0
        self.streams_open = 0
        self.connections: set[asyncio.Transport] = set()  # closed at stop (3.11 has no close_clients)


class UpstreamProtocol(asyncio.Protocol):
    """One client connection: requests answered one after another (no pipelining needed)."""

    def __init__(self, answers: Answers, counters: Counters) -> None:
        self.answers = answers
        self.counters = counters
        self.buffer = b""
        self.busy = False
        self.closed = False
        self.timers: list[asyncio.TimerHandle] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.counters.connections.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.transport is not None:
            self.counters.connections.discard(self.transport)
        for timer in self.timers:
            timer.cancel()
        if self.busy:
            self.counters.streams_open -= 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._next_request()

    def _next_request(self) -> None:
        assert self.transport is not None
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                self._fail(431, "request head too large")
            return
        lines = self.buffer[:end].decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        try:
            method, target, _ = lines[0].split(" ", 2)
            length = int(headers.get("content-length", "0"))
        except ValueError:
            self._fail(400, "malformed request line or content-length")
            return
        if len(self.buffer) < end + 4 + length:
            return  # the body is still on its way
        body = self.buffer[end + 4 : end + 4 + length]
        self.buffer = self.buffer[end + 4 + length :]
        self.counters.requests += 1
        if method == "GET":
            self._get(target)
        elif method == "POST" and target.rstrip("/").endswith("/chat/completions"):
            self._complete(body)
        else:
            self._fail(404, f"no route for {method} {target}")

    def _get(self, target: str) -> None:
        assert self.transport is not None
        if target == "/stats":
            stats = {"requests": self.counters.requests, "streams_open": self.counters.streams_open}
            self.transport.write(response(200, "application/json", json.dumps(stats).encode()))
        else:
            self.transport.write(response(200, "text/plain", b"ok"))
        self._next_request()

    def _complete(self, raw: bytes) -> None:
        assert self.transport is not None
        try:
            request = json.loads(raw)
            model = str(request["model"])
        except (ValueError, KeyError, TypeError):
            self._fail(400, "body must be a JSON object with a model")
            return
        if not request.get("stream"):
            self.transport.write(self.answers.whole(model))
            self._next_request()
            return
        head, deltas, tail = self.answers.stream(model)
        shape = self.answers.shape
        if not shape.ttft_s and not shape.gap_s:
            self.transport.write(b"".join((head, *deltas, tail)))
            self._next_request()
            return
        self.busy = True
        self.counters.streams_open += 1
        self.transport.write(head)
        loop = asyncio.get_running_loop()
        self.timers = [
            loop.call_later(shape.ttft_s + i * shape.gap_s, self._send, piece)
            for i, piece in enumerate(deltas)
        ]
        last = shape.ttft_s + (len(deltas) - 1) * shape.gap_s
        self.timers.append(loop.call_later(max(0.0, last), self._finish, tail))

    def _send(self, piece: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(piece)

    def _finish(self, tail: bytes) -> None:
        if self.closed or self.transport is None:
            return
        self.transport.write(tail)
        self.busy = False
        self.counters.streams_open -= 1
        self.timers = []
        self._next_request()

    def _fail(self, status: int, message: str) -> None:
        assert self.transport is not None
        body = json.dumps({"error": {"message": message, "type": "invalid_request_error"}}).encode()
        self.transport.write(response(status, "application/json", body))
        self.transport.close()


class FastUpstream:
    """The server in this process (tests, `lobe loadtest`); `main` runs it as its own process."""

    def __init__(self, shape: Shape, port: int = 0, host: str = LOOPBACK) -> None:
        self.answers = Answers(shape)
        self.counters = Counters()
        self.host, self.port = host, port
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """The base URL an OpenAI client or deployment uses (`…/v1`)."""
        return f"http://{self.host}:{self.port}/v1"

    async def start(self) -> FastUpstream:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: UpstreamProtocol(self.answers, self.counters), self.host, self.port
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for transport in list(self.counters.connections):
            transport.close()


def add_shape_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """--[prefix]chunks, --[prefix]ttft-ms, --[prefix]tokens-per-s: the answer's shape as flags."""
    shape = Shape()
    parser.add_argument(f"--{prefix}chunks", type=int, default=shape.chunks, help="content deltas per answer")
    parser.add_argument(f"--{prefix}ttft-ms", type=float, default=0.0, help="delay before the first delta")
    parser.add_argument(
        f"--{prefix}tokens-per-s",
        type=float,
        default=0.0,
        help="pace of the deltas (0: no delay between them)",
    )


def shape_argv(shape: Shape, prefix: str = "") -> list[str]:
    """The flags of `add_shape_arguments` that give `shape`: the inverse of `shape_from`."""
    return [
        f"--{prefix}chunks", str(shape.chunks),
        f"--{prefix}ttft-ms", f"{shape.ttft_s * 1000:g}",
        f"--{prefix}tokens-per-s", f"{shape.tokens_per_s:g}",
    ]  # fmt: skip


def shape_from(args: argparse.Namespace, prefix: str = "") -> Shape:
    attr = prefix.replace("-", "_")
    return Shape(
        chunks=getattr(args, f"{attr}chunks"),
        ttft_s=getattr(args, f"{attr}ttft_ms") / 1000,
        tokens_per_s=getattr(args, f"{attr}tokens_per_s"),
    )


async def serve(shape: Shape, port: int, host: str) -> None:
    stop = stop_requested()
    upstream = await FastUpstream(shape, port, host).start()
    print(f"fake upstream on {upstream.url}: {shape.describe()}", flush=True)
    await stop.wait()
    await upstream.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="A fast fake OpenAI Chat Completions server.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default=LOOPBACK)
    add_shape_arguments(parser)
    args = parser.parse_args()
    asyncio.run(serve(shape_from(args), args.port, args.host))


if __name__ == "__main__":
    main()
