"""What the gateway's handlers share, opened and closed together (aiohttp cleanup_ctx)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from lobe.gateway.auth import ApiKeyStore
from lobe.gateway.budget import BudgetClient
from lobe.gateway.dispatch import ChatDispatcher
from lobe.gateway.settings import GatewaySettings
from lobe.shared.bus import close, connect, ensure_streams
from lobe.shared.lifecycle import announce


@dataclass
class Resources:
    settings: GatewaySettings
    nc: NATS
    js: JetStreamContext
    keys: ApiKeyStore
    dispatcher: ChatDispatcher
    budget: BudgetClient
    # Answers in flight, so shutdown can end each with an explicit error.
    answers: set[Answer] = field(default_factory=set)

    def abort_answers(self) -> None:
        for answer in list(self.answers):
            answer.abort()


if TYPE_CHECKING:
    from lobe.gateway.answer import Answer

SETTINGS = web.AppKey("settings", GatewaySettings)
RESOURCES = web.AppKey("resources", Resources)


async def open_resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    nc = await connect(settings, name="gateway")
    keys = ApiKeyStore(nc, settings)
    await keys.watch_revocations()
    js = nc.jetstream()
    await ensure_streams(js, replicas=settings.nats_stream_replicas)
    await announce(js, "gateway", "started")
    app[RESOURCES] = Resources(
        settings, nc, js, keys, ChatDispatcher(nc, settings), BudgetClient(nc, settings)
    )
    yield
    await announce(js, "gateway", "stopped")
    await close(nc)
