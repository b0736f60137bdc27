"""The gateway's aiohttp application: routes, middlewares, resources."""

from __future__ import annotations

from aiohttp import web

from lobe.gateway.admin import invalidate_cache
from lobe.gateway.chat import chat_completions
from lobe.gateway.models import list_models
from lobe.gateway.ratelimit.headers import add_rate_headers
from lobe.gateway.resources import RESOURCES, SETTINGS, open_resources
from lobe.gateway.settings import GatewaySettings
from lobe.shared.openai_errors import openai_errors
from lobe.shared.ops import add_ops_routes


def create_app(settings: GatewaySettings) -> web.Application:
    app = web.Application(middlewares=[openai_errors], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(open_resources)
    app.on_response_prepare.append(add_rate_headers)  # on every answer to a rate-limited request

    async def nats_ready() -> bool:
        resources = app.get(RESOURCES)
        return resources is not None and resources.nc.is_connected

    add_ops_routes(app, nats_ready, liveness_path="/api/health", readiness_path="/api/ready")
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
    app.router.add_post("/v1/admin/cache/invalidate", invalidate_cache)
    return app
