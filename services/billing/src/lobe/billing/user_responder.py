"""Billing's FastStream subscriber for `auth.user.resolve` (queue group `billing`, core NATS
request-reply): takes the command's model, returns the reply's. The logic is UserDirectory's;
this module only wires the subject to it.

A database that is away leaves the command unanswered (logged): the gateway's sign-in answers 503.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import asyncpg
from faststream.middlewares import ExceptionMiddleware
from faststream.nats import NatsRouter

from lobe.shared.events.auth import AUTH_USER_RESOLVE, UserResolve, UserResolved
from lobe.shared.events.billing import BILLING_QUEUE

log = logging.getLogger(__name__)
DATABASE_AWAY = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
# Sign-ins are rare next to chat requests: a few at once per process is plenty.
SIGN_IN_WORKERS = 4

Resolve = Callable[[UserResolve], Awaitable[UserResolved]]


class UsersUnavailableError(Exception):
    """The user table cannot be read: the command stays unanswered on purpose."""


def _unanswered(exc: Exception) -> None:
    """Already logged where it was raised; suppressed, so FastStream neither replies nor logs it again."""


def build_user_router(resolve: Resolve) -> NatsRouter:
    router = NatsRouter(middlewares=[ExceptionMiddleware(handlers={UsersUnavailableError: _unanswered})])

    @router.subscriber(AUTH_USER_RESOLVE, queue=BILLING_QUEUE, max_workers=SIGN_IN_WORKERS)
    async def resolve_user(ask: UserResolve) -> UserResolved:
        try:
            return await resolve(ask)
        except DATABASE_AWAY as exc:
            log.error("%s not answered, the database is unavailable: %r", AUTH_USER_RESOLVE, exc)
            raise UsersUnavailableError(ask.request_id) from None

    return router
