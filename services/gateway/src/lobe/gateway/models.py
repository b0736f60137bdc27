"""GET /v1/models: the models the running workers route, asked of them over NATS."""

from __future__ import annotations

import time
import uuid

from aiohttp import web

from lobe.gateway.auth.assembly import AUTH
from lobe.gateway.dispatch import no_worker
from lobe.gateway.resources import RESOURCES
from lobe.shared.events.chat import CHAT_MODELS, ModelInfo, ModelList

MODELS_TIMEOUT_S = 1.0


async def served_models(request: web.Request) -> list[ModelInfo]:
    """The models a running worker routes, with their deployments' health (503 with no worker)."""
    reply = await request.app[RESOURCES].bus.request(CHAT_MODELS, None, MODELS_TIMEOUT_S)
    if not isinstance(reply, ModelList):  # unanswered, or unreadable (logged by the bus)
        raise no_worker("No chat worker is running to list models.")
    return reply.models


async def list_models(request: web.Request) -> web.Response:
    resources = request.app[RESOURCES]
    caller = await request.app[AUTH].auth.authenticate(request)
    await resources.rate_limits.admit(request, caller, uuid.uuid4().hex)
    models = await served_models(request)
    created = int(time.time())
    return web.json_response(
        {
            "object": "list",
            "data": [
                {"id": m.id, "object": "model", "created": created, "owned_by": m.owned_by} for m in models
            ],
        }
    )
