"""Process entry: settings, logging, tracing, then serve until SIGTERM."""

from __future__ import annotations

import logging
import sys

from aiohttp import web

from lobe.gateway.app import create_app, start_ops
from lobe.gateway.drain import drain
from lobe.gateway.settings import GatewaySettings
from lobe.shared.config_file import ConfigError
from lobe.shared.ops import bound_port
from lobe.shared.process import run_service, stop_requested

log = logging.getLogger("lobe.gateway")
ABORT_MARGIN_S = 2.0


async def serve(settings: GatewaySettings) -> None:
    # handler_cancellation: a client that disconnects cancels its handler at once, which is
    # what lets the gateway cancel the provider call within milliseconds.
    stop = stop_requested()
    app = create_app(settings)
    runner = web.AppRunner(
        app,
        handler_cancellation=True,
        access_log=None,
        # aiohttp force-closes what is left after this; streams are ended a margin earlier, so
        # their error event still reaches the client.
        shutdown_timeout=settings.shutdown_grace_s + ABORT_MARGIN_S,
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.gateway_host, settings.gateway_port)
    await site.start()
    ops = await start_ops(app)
    log.info(
        "gateway listening on http://%s:%d (ops and /metrics on port %d)",
        settings.gateway_host,
        settings.gateway_port,
        bound_port(ops),
    )
    await stop.wait()
    await drain(app, runner)
    await ops.cleanup()  # last, so the drain stays visible to Prometheus and the readiness probe


def main() -> None:
    settings = GatewaySettings()
    try:
        run_service("gateway", settings, lambda: serve(settings))
    except ConfigError as exc:  # RATE_LIMITS_FILE: refused before anything is served
        print(f"gateway: {exc}", file=sys.stderr)
        sys.exit(2)
