"""The one way a route learns who is calling: `Authenticator`.

A credential is the bearer token (an API key or a session JWT) or, with no Authorization header,
the session cookie, which may change state only from our own pages (lobe.gateway.auth.browser:
403 otherwise). Anything refused gets a 401 in OpenAI's error format; nothing malformed or
badly signed causes any bus traffic (only a well-formed key this replica does not know costs one
lookup at billing, behind the guard's hook).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

from aiohttp import web

from lobe.gateway.auth.api_keys import ApiKeyStore
from lobe.gateway.auth.browser import BrowserPolicy
from lobe.gateway.auth.guard import AuthGuard
from lobe.gateway.auth.revocations import RevokedSessions
from lobe.gateway.auth.session_tokens import SessionClaims, TokenRefused, TokenSigner, looks_like_jwt
from lobe.shared.events.chat import Caller
from lobe.shared.openai_errors import ApiError, bearer_token

SESSION_REFUSALS = {
    "expired": "The session has expired; sign in again.",
    "revoked": "The session has ended; sign in again.",
}
INVALID_SESSION = "The session token is not valid."


def caller_of(session: SessionClaims) -> Caller:
    # rate_tier reaches Caller where Caller has the field (the rate limits' side of issue 8).
    return Caller(user_id=session.sub, plan=session.plan, rate_tier=session.rate_tier)


@dataclass
class Authenticator:
    keys: ApiKeyStore
    signer: TokenSigner | None  # None: sessions are off, every JWT is refused
    revoked: RevokedSessions | None
    guard: AuthGuard
    browser: BrowserPolicy

    async def authenticate(self, request: web.Request) -> Caller:
        """The caller of an API request: an API key's owner or a session's user."""
        token = self._credential(request)
        if looks_like_jwt(token):
            return caller_of(await self._session(request, token))
        caller = await self.keys.caller(token, lambda: self.guard.before_key_lookup(request))
        if caller is None:
            await self._refuse(request, "Incorrect API key provided.", "invalid_api_key")
        return caller

    async def session(self, request: web.Request) -> SessionClaims:
        """The caller's session; an API key is not one (401)."""
        token = self._credential(request)
        if not looks_like_jwt(token):
            message = "This endpoint needs a signed-in session, not an API key."
            await self._refuse(request, message, "session_required")
        return await self._session(request, token)

    async def admin(self, request: web.Request) -> SessionClaims:
        """An admin's session: 401 without a valid session, 403 for any other role."""
        session = await self.session(request)
        if session.role != "admin":
            raise ApiError(403, "This endpoint is for admins.", "admin_required")
        return session

    def _credential(self, request: web.Request) -> str:
        token = bearer_token(request)
        if token:
            return token
        token = request.cookies.get(self.browser.cookie_name(request))
        if not token:
            raise ApiError(
                401, "You didn't provide an API key. Use 'Authorization: Bearer YOUR_KEY'.", "missing_api_key"
            )
        self.browser.check_cookie_request(request)
        return token

    async def _session(self, request: web.Request, token: str) -> SessionClaims:
        try:
            if self.signer is None or self.revoked is None:
                raise TokenRefused("unknown_kid")
            session = self.signer.open_session(token)
            if session.sid in self.revoked:
                raise TokenRefused("revoked")
        except TokenRefused as refused:
            message = SESSION_REFUSALS.get(refused.reason, INVALID_SESSION)
            await self._refuse(request, message, "invalid_session")
        return session

    async def _refuse(self, request: web.Request, message: str, code: str) -> NoReturn:
        await self.guard.credential_refused(request)
        raise ApiError(401, message, code)
