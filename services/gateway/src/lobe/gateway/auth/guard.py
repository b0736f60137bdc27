"""Where a limiter sees what comes before authentication: the one place to plug per-IP limits on
sign-in and on refused credentials (Resources.guard). Each hook may raise ApiError(429) to refuse;
the default lets everything through."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web


class AuthGuard(Protocol):
    async def sign_in(self, request: web.Request) -> None:
        """First thing the login and callback routes do."""

    async def before_key_lookup(self, request: web.Request) -> None:
        """Before asking billing about an API key this replica has no answer for (a bus round trip)."""

    async def credential_refused(self, request: web.Request) -> None:
        """A credential was refused; called just before its 401 goes out."""


class OpenGuard:
    """No limits: every hook lets the request through."""

    async def sign_in(self, request: web.Request) -> None:
        return None

    async def before_key_lookup(self, request: web.Request) -> None:
        return None

    async def credential_refused(self, request: web.Request) -> None:
        return None
