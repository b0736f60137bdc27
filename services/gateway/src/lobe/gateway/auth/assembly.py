"""The auth parts a gateway runs with, from its settings: keys, sessions, providers, sign-in."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from redis.asyncio import Redis

from lobe.gateway.auth.api_keys import ApiKeyStore
from lobe.gateway.auth.browser import BrowserPolicy
from lobe.gateway.auth.credentials import Authenticator
from lobe.gateway.auth.guard import AuthGuard
from lobe.gateway.auth.provider_config import configured_providers
from lobe.gateway.auth.revocations import RevokedSessions
from lobe.gateway.auth.session_tokens import TokenSigner
from lobe.gateway.auth.sessions import SessionStore
from lobe.gateway.auth.sign_in import SignIn
from lobe.gateway.auth.signing_keys import KeyRing, SigningKeyError, load_key_ring
from lobe.gateway.settings import GatewaySettings
from lobe.shared.bus import Bus

REDIS_TIMEOUT_S = 1.0


@dataclass
class AuthParts:
    auth: Authenticator
    key_ring: KeyRing | None
    sessions: RevokedSessions | None  # None: no SESSION_KEYS, sessions are off
    sign_in: SignIn | None  # None: no provider configured
    redis: Redis

    @property
    def guard(self) -> AuthGuard:
        """Per-IP limits on sign-in and refused credentials."""
        return self.auth.guard

    async def close(self) -> None:
        if self.sessions is not None:
            await self.sessions.stop()
        await self.redis.aclose()


# What the auth and admin handlers read (set while the app starts: lobe.gateway.resources).
AUTH = web.AppKey("auth", AuthParts)


async def open_auth(settings: GatewaySettings, bus: Bus, guard: AuthGuard) -> AuthParts:
    ring = load_key_ring(settings.session_keys.get_secret_value(), settings.session_signing_kid)
    found = configured_providers(settings)
    if found and ring is None:
        raise SigningKeyError(f"sign-in with {sorted(found)} needs SESSION_KEYS to sign sessions")
    redis = Redis.from_url(
        **settings.redis_from_url(settings.redis_url),
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
    )
    keys = ApiKeyStore(bus, settings)
    await keys.watch_revocations()
    signer = TokenSigner(ring) if ring else None
    sessions = RevokedSessions(SessionStore(redis), bus) if ring else None
    if sessions is not None:
        await sessions.start()
    sign_in = None
    if found and signer is not None and sessions is not None:
        sign_in = SignIn(
            providers=found,
            signer=signer,
            sessions=sessions,
            bus=bus,
            return_origins=settings.cors_origins,
            session_ttl_s=settings.session_ttl_s,
            billing_timeout_s=settings.billing_timeout_s,
            public_url=settings.gateway_public_url,
        )
    browser = BrowserPolicy(settings.gateway_public_url, settings.cors_origins)
    return AuthParts(Authenticator(keys, signer, sessions, guard, browser), ring, sessions, sign_in, redis)
