"""Process entry: settings, then the shared service runtime (lobe.shared.process). The app's own
resources open and close in its cleanup_ctx (lobe.gateway.resources); SIGTERM drains the public
listener in lobe.gateway.drain's order, then the ops listener goes."""

from __future__ import annotations

import logging
import sys

from aiohttp import web

from lobe.gateway.app import create_app, readiness
from lobe.gateway.drain import drain
from lobe.gateway.settings import GatewaySettings
from lobe.shared.config_file import ConfigError
from lobe.shared.process import ServiceRuntime, run_service

log = logging.getLogger("lobe.gateway")
ABORT_MARGIN_S = 2.0


async def start(runtime: ServiceRuntime, settings: GatewaySettings) -> None:
    app = create_app(settings, draining=runtime.draining)  # /api/ready goes 503 with the ops probe
    await runtime.serve_ops(settings, readiness(app))
    # handler_cancellation: a client that disconnects cancels its handler at once, which is
    # what lets the gateway cancel the provider call within milliseconds.
    runner = web.AppRunner(
        app,
        handler_cancellation=True,
        access_log=None,
        # aiohttp force-closes what is left after this; streams are ended a margin earlier, so
        # their error event still reaches the client.
        shutdown_timeout=settings.shutdown_grace_s + ABORT_MARGIN_S,
    )
    await runner.setup()  # the cleanup_ctx opens the app's resources: NATS, Redis, auth
    runtime.on_stop(drain, app, runner)
    await web.TCPSite(runner, settings.gateway_host, settings.gateway_port).start()
    log.info(
        "gateway listening on http://%s:%d (ops and /metrics on port %d)",
        settings.gateway_host,
        settings.gateway_port,
        runtime.ops_port,
    )


def main() -> None:
    settings = GatewaySettings()
    try:
        run_service("gateway", settings, lambda runtime: start(runtime, settings))
    except ConfigError as exc:  # RATE_LIMITS_FILE: refused before anything is served
        print(f"gateway: {exc}", file=sys.stderr)
        sys.exit(2)
