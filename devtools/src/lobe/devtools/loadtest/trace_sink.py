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
    received_bytes: int = 0
    kept: list[bytes] | None = None  # each export's body (ExportTraceServiceRequest), when asked


@contextlib.asynccontextmanager
async def trace_sink(keep: bool = False) -> AsyncIterator[TraceSink]:
    """`keep`: hold every export's body for the caller to read (a test; a bench keeps counts)."""
    port = free_port()
    sink = TraceSink(f"http://127.0.0.1:{port}", kept=[] if keep else None)

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        sink.received_bytes += len(body)
        sink.exports += 1
        if sink.kept is not None:
            sink.kept.append(body)
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
