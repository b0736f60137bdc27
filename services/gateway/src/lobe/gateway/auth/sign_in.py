"""Signing in and out: the code flow with a provider, the user from billing, the session.

Every refused sign-in is an `auth.login.failed` fact and an OpenAI-format error (4xx for what the
browser brought, 502 for a provider that misbehaved, 503 when billing or Redis is away); a
successful one is `auth.login.succeeded`, and a sign-out `auth.login.ended`.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from dataclasses import dataclass

from aiohttp import web

from lobe.gateway.auth.identity import Identity, Provider, SignInRefused
from lobe.gateway.auth.revocations import RevokedSessions
from lobe.gateway.auth.session_tokens import SessionClaims, TokenSigner
from lobe.gateway.auth.sign_in_flow import CALLBACK_PATH, FLOW_COOKIE, new_flow, safe_return_to, seal, unseal
from lobe.gateway.auth.users import resolve_user
from lobe.gateway.redis_pool import REDIS_ERRORS
from lobe.shared.bus import Bus
from lobe.shared.events.auth import (
    AUTH_LOGIN_FAILED,
    AUTH_LOGIN_SUCCEEDED,
    LoginFailed,
    LoginSucceeded,
    SignInProvider,
    UserResolved,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewSession:
    token: str
    claims: SessionClaims


@dataclass
class SignIn:
    providers: dict[str, Provider]
    signer: TokenSigner
    sessions: RevokedSessions
    bus: Bus
    return_origins: frozenset[str]
    session_ttl_s: int
    billing_timeout_s: float
    public_url: str | None

    def provider(self, name: str) -> Provider:
        if name not in self.providers:
            raise web.HTTPNotFound(reason="Unknown sign-in provider")
        return self.providers[name]

    def callback_url(self, request: web.Request, provider: str) -> str:
        base = self.public_url or f"{request.scheme}://{request.host}"
        return f"{base.rstrip('/')}{CALLBACK_PATH}{provider}"

    async def begin(self, request: web.Request, name: str) -> tuple[str, str]:
        """(the provider's authorization URL, the flow cookie's value)."""
        provider = self.provider(name)
        try:
            flow = new_flow(
                provider.name, safe_return_to(request.query.get("return_to"), self.return_origins)
            )
            url = await provider.authorization_url(
                self.callback_url(request, name), flow.state, flow.nonce, flow.verifier
            )
        except SignInRefused as refused:
            await self._failed(provider.name, refused)
            raise
        return url, seal(self.signer, flow)

    async def finish(self, request: web.Request, name: str) -> tuple[NewSession, str | None]:
        """Redeem the callback: (the new session, where the browser goes next)."""
        provider = self.provider(name)
        try:
            flow = unseal(self.signer, request.cookies.get(FLOW_COOKIE), name, request.query.get("state"))
            if "error" in request.query or "code" not in request.query:
                # The user declined at the provider, or it failed: its words are not repeated.
                raise SignInRefused("code_refused", "The sign-in provider did not grant access.", 400)
            identity = await provider.identity(
                request.query["code"], self.callback_url(request, name), flow.verifier, flow.nonce
            )
            self._check_domain(provider, identity)
            user = await resolve_user(self.bus, identity, self.billing_timeout_s)
            session = await self._start(identity, user)
        except SignInRefused as refused:
            await self._failed(provider.name, refused)
            raise
        log.info(
            "signed in", extra={"user_id": user.user_id, "provider": name, "session_id": session.claims.sid}
        )
        return session, flow.return_to

    @staticmethod
    def _check_domain(provider: Provider, identity: Identity) -> None:
        # The provider's own list: one provider's domains never admit another provider's users.
        if provider.domains and identity.domain not in provider.domains:
            raise SignInRefused(
                "domain_not_allowed", "Your e-mail domain may not sign in here.", 403, identity.domain
            )

    async def _start(self, identity: Identity, user: UserResolved) -> NewSession:
        now = int(time.time())
        claims = SessionClaims(
            sub=user.user_id,
            email=identity.email,
            role=user.role,
            plan=user.plan,
            rate_tier=user.rate_tier,
            sid=secrets.token_urlsafe(16),
            iat=now,
            exp=now + self.session_ttl_s,
        )
        try:
            await self.sessions.store.started(user.user_id, claims.sid, claims.exp)
        except REDIS_ERRORS as exc:
            log.warning("sign-in refused: Redis is unavailable to record the session: %s", type(exc).__name__)
            raise SignInRefused(
                "sessions_unavailable", "Sign-in is unavailable right now; retry shortly.", 503
            ) from None
        fact = LoginSucceeded(
            request_id=claims.sid,
            user_id=user.user_id,
            session_id=claims.sid,
            provider=identity.provider,
            expires_at=claims.exp,
            new_user=user.created,
        )
        await self.bus.publish_fact(AUTH_LOGIN_SUCCEEDED, fact)
        return NewSession(self.signer.sign_session(claims), claims)

    async def _failed(self, provider: SignInProvider, refused: SignInRefused) -> None:
        log.info("sign-in refused: %s", refused.reason, extra={"provider": provider})
        event = LoginFailed(
            request_id=uuid.uuid4().hex,
            provider=provider,
            reason=refused.reason,
            email_domain=refused.email_domain,
        )
        await self.bus.publish_fact(AUTH_LOGIN_FAILED, event)
