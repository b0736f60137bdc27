"""GET /v1/models: the models the running workers route, asked of them over NATS."""

from __future__ import annotations

import time

from aiohttp import web
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from lobe.gateway.dispatch import no_worker
from lobe.gateway.resources import RESOURCES
from lobe.shared.events.chat import CHAT_MODELS, ModelList

MODELS_TIMEOUT_S = 1.0


async def list_models(request: web.Request) -> web.Response:
    resources = request.app[RESOURCES]
    await resources.keys.authenticate(request)
    try:
        msg = await resources.nc.request(CHAT_MODELS, b"", timeout=MODELS_TIMEOUT_S)
    except (NoRespondersError, NatsTimeout):
        raise no_worker("No chat worker is running to list models.") from None
    models = ModelList.model_validate_json(msg.data).models
    created = int(time.time())
    return web.json_response(
        {
            "object": "list",
            "data": [
                {"id": m.id, "object": "model", "created": created, "owned_by": m.owned_by} for m in models
            ],
        }
    )
