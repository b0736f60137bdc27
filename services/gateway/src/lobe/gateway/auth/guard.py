"""Where a limiter sees what comes before authentication: the one place to plug per-IP limits on
sign-in and on refused credentials (AuthParts.guard). Each hook may raise ApiError(429) to refuse;
the default lets everything through."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

Refund = Callable[[], Awaitable[None]]


class AuthGuard(Protocol):
    async def sign_in(self, request: web.Request) -> None:
        """First thing the login and callback routes do."""

    async def before_key_lookup(self, request: web.Request) -> Refund | None:
        """Before asking billing about an API key this replica has no answer for (a bus round trip):
        counts as a failed attempt now, so a flood of bad keys is cut off before billing works;
        what it returns undoes that, for a key billing vouches for."""

    async def credential_refused(self, request: web.Request) -> None:
        """A credential was refused; called just before its 401 goes out (not counted twice when
        `before_key_lookup` counted it already)."""


class OpenGuard:
    """No limits: every hook lets the request through."""

    async def sign_in(self, request: web.Request) -> None:
        return None

    async def before_key_lookup(self, request: web.Request) -> Refund | None:
        return None

    async def credential_refused(self, request: web.Request) -> None:
        return None
