"""The gateway's aiohttp application: routes, middlewares, resources."""

from __future__ import annotations

from aiohttp import web

from lobe.gateway.chat import chat_completions
from lobe.gateway.models import list_models
from lobe.gateway.resources import RESOURCES, SETTINGS, open_resources
from lobe.gateway.settings import GatewaySettings
from lobe.shared.http_telemetry import instrument
from lobe.shared.openai_errors import openai_errors
from lobe.shared.ops import add_ops_routes


def create_app(settings: GatewaySettings) -> web.Application:
    app = web.Application(middlewares=[openai_errors], client_max_size=settings.max_body_bytes)
    instrument(app)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(open_resources)

    async def nats_ready() -> bool:
        resources = app.get(RESOURCES)
        return resources is not None and resources.nc.is_connected

    add_ops_routes(app, nats_ready, liveness_path="/api/health", readiness_path="/api/ready")
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
    return app
