"""What the gateway's handlers share, opened and closed together (aiohttp cleanup_ctx)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from lobe.gateway.auth.assembly import AuthParts, open_auth
from lobe.gateway.auth.guard import AuthGuard, OpenGuard
from lobe.gateway.budget import BudgetClient
from lobe.gateway.dispatch import ChatDispatcher
from lobe.gateway.settings import GatewaySettings
from lobe.shared.bus import close, connect, ensure_streams
from lobe.shared.lifecycle import announce

if TYPE_CHECKING:
    from lobe.gateway.answer import Answer
    from lobe.gateway.auth.credentials import Authenticator
    from lobe.gateway.auth.revocations import RevokedSessions
    from lobe.gateway.auth.sign_in import SignIn
    from lobe.gateway.auth.signing_keys import KeyRing


@dataclass
class Resources:
    settings: GatewaySettings
    nc: NATS
    js: JetStreamContext
    access: AuthParts
    dispatcher: ChatDispatcher
    budget: BudgetClient
    http: aiohttp.ClientSession  # billing's admin API
    # Per-IP limits on sign-in and refused credentials plug in here (lobe.gateway.auth.guard).
    guard: AuthGuard
    # Answers in flight, so shutdown can end each with an explicit error.
    answers: set[Answer] = field(default_factory=set)

    @property
    def auth(self) -> Authenticator:
        return self.access.auth

    @property
    def sessions(self) -> RevokedSessions | None:
        return self.access.sessions

    @property
    def sign_in(self) -> SignIn | None:
        return self.access.sign_in

    @property
    def key_ring(self) -> KeyRing | None:
        return self.access.key_ring

    def abort_answers(self) -> None:
        for answer in list(self.answers):
            answer.abort()


SETTINGS = web.AppKey("settings", GatewaySettings)
RESOURCES = web.AppKey("resources", Resources)


async def open_resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    nc = await connect(settings, name="gateway")
    js = nc.jetstream()
    await ensure_streams(js, replicas=settings.nats_stream_replicas)
    guard = OpenGuard()
    access = await open_auth(settings, nc, js, guard)
    await announce(js, "gateway", "started")
    http = aiohttp.ClientSession()
    app[RESOURCES] = Resources(
        settings, nc, js, access, ChatDispatcher(nc, settings), BudgetClient(nc, settings), http, guard
    )
    yield
    await announce(js, "gateway", "stopped")
    await http.close()
    await access.close()
    await close(nc)
