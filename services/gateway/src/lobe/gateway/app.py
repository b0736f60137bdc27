"""The gateway's aiohttp application: routes, middlewares, resources.

Only the public API (and its health checks) is served here; /metrics is on the ops listener
(OPS_PORT), which no Ingress routes to.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from lobe.gateway.account.keys import add_key_routes
from lobe.gateway.account.usage import add_usage_routes
from lobe.gateway.auth.admin import add_admin_routes
from lobe.gateway.auth.assembly import AUTH
from lobe.gateway.auth.routes import add_auth_routes
from lobe.gateway.cache.admin import invalidate_cache
from lobe.gateway.chat import chat_completions
from lobe.gateway.console.routes import add_console_routes
from lobe.gateway.cors import setup_cors
from lobe.gateway.drain import (
    DRAINING,
    LIVE_ANSWERS,
    WINDING_DOWN,
    LiveAnswers,
    WindingDown,
    finish_wind_downs,
)
from lobe.gateway.embeddings import embeddings
from lobe.gateway.images import images
from lobe.gateway.json_request import refuse_oversized
from lobe.gateway.models import list_models
from lobe.gateway.openapi import gateway_openapi
from lobe.gateway.ratelimit.headers import add_rate_headers
from lobe.gateway.ratelimit.proxy_check import UntrustedProxyCheck
from lobe.gateway.resources import RESOURCES, SETTINGS, open_resources
from lobe.gateway.responses import responses
from lobe.gateway.resume.routes import resume_stream
from lobe.gateway.settings import GatewaySettings
from lobe.gateway.speech import speech
from lobe.gateway.transcriptions import transcriptions
from lobe.shared.http_telemetry import instrument
from lobe.shared.openai_errors import openai_errors
from lobe.shared.openapi import serve_openapi
from lobe.shared.ops import Readiness, ReadinessCheck, add_health_routes, start_ops_server

PROXY_CHECK = web.AppKey("proxy_check", UntrustedProxyCheck)


def readiness(app: web.Application) -> ReadinessCheck:
    async def gateway_ready() -> Readiness:
        if app[DRAINING].is_set():  # SIGTERM: the load balancer must stop sending first
            return Readiness(False, ("draining: shutting down",))
        resources = app.get(RESOURCES)
        if resources is None or not resources.bus.connected:
            return Readiness(False, ("not connected to NATS",))
        sessions = app[AUTH].sessions
        if sessions is not None and not sessions.synced:
            # Serving now would accept every session revoked while this replica was away.
            return Readiness(False, ("revoked sessions not loaded from Redis yet",))
        return Readiness(True, app[PROXY_CHECK].warnings())  # ready, but an operator should look

    return gateway_ready


def create_app(settings: GatewaySettings, draining: asyncio.Event | None = None) -> web.Application:
    """`draining`: the process runtime's, set on SIGTERM (lobe.shared.process); in-process
    harnesses leave it out."""
    # client_max_size: aiohttp's own cap, in case anything reads a body outside json_request.
    app = web.Application(
        middlewares=[openai_errors, refuse_oversized], client_max_size=settings.max_body_bytes
    )
    instrument(app, public=True)  # a client's traceparent is a link, not our parent
    app[SETTINGS] = settings
    app[DRAINING] = draining or asyncio.Event()
    app[LIVE_ANSWERS] = LiveAnswers()
    app[WINDING_DOWN] = WindingDown()
    setup_cors(app, settings.cors_origins)
    app.cleanup_ctx.append(open_resources)
    app.cleanup_ctx.append(finish_wind_downs)  # closed first: the wind-downs use the resources
    app.on_response_prepare.append(add_rate_headers)  # on every answer to a rate-limited request
    app[PROXY_CHECK] = UntrustedProxyCheck(bool(settings.trusted_proxies.strip()))
    app.on_response_prepare.append(app[PROXY_CHECK].on_response_prepare)
    add_health_routes(app, readiness(app), liveness_path="/api/health", readiness_path="/api/ready")
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/images/generations", images)
    app.router.add_post("/v1/audio/speech", speech)
    app.router.add_post("/v1/audio/transcriptions", transcriptions)
    app.router.add_get("/v1/chat/completions/{request_id}/stream", resume_stream)
    app.router.add_post("/v1/responses", responses)
    app.router.add_get("/v1/models", list_models)
    add_auth_routes(app)
    add_key_routes(app)
    add_usage_routes(app)
    add_console_routes(app)
    app.router.add_post("/v1/admin/cache/invalidate", invalidate_cache)  # before billing's catch-all
    add_admin_routes(app)
    serve_openapi(app, gateway_openapi())
    return app


async def start_ops(app: web.Application) -> web.AppRunner:
    """The ops listener beside the public one: health and Prometheus /metrics."""
    settings = app[SETTINGS]
    return await start_ops_server(settings.ops_host, settings.ops_port, readiness(app))
