"""An OTLP/HTTP trace receiver that keeps nothing but a count: what `lobe bench --tracing` points
every service at. The suite then pays for its traces as in production (the production values set
an OTLP endpoint and no sampler: every span is recorded, batched, encoded and sent over HTTP)
without a collector on the machine; the receiver's own work lands on the client, not the suite."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from lobe.devtools.ports import free_port

MAX_EXPORT_BYTES = 64 * 2**20


@dataclass
class TraceSink:
    url: str  # OTEL_EXPORTER_OTLP_ENDPOINT (the exporter appends /v1/traces)
    exports: int = 0
    bytes: int = 0


@contextlib.asynccontextmanager
async def trace_sink() -> AsyncIterator[TraceSink]:
    port = free_port()
    sink = TraceSink(f"http://127.0.0.1:{port}")

    async def receive(request: web.Request) -> web.Response:
        sink.bytes += len(await request.read())
        sink.exports += 1
        # An empty ExportTraceServiceResponse: everything accepted.
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application(client_max_size=MAX_EXPORT_BYTES)
    app.router.add_post("/v1/traces", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield sink
    finally:
        await runner.cleanup()
