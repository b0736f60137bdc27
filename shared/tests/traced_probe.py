"""A process set up as every service is (`setup_tracing` from its environment) serving one
instrumented route, for test_telemetry.py: it serves until its stdin closes, then exports what
it holds on its way out."""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

from lobe.shared.http_telemetry import instrument
from lobe.shared.settings import TelemetrySettings
from lobe.shared.telemetry import setup_tracing


async def ping(request: web.Request) -> web.Response:
    return web.Response(text="pong")


async def serve(port: int) -> None:
    app = web.Application()
    instrument(app)  # internal: a caller's traceparent is the span's parent
    app.router.add_get("/v1/ping", ping)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.read)
    await runner.cleanup()


if __name__ == "__main__":
    provider = setup_tracing(TelemetrySettings(), "probe")
    try:
        asyncio.run(serve(int(sys.argv[1])))
    finally:
        provider.shutdown()
