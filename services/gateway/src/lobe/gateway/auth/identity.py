"""What a sign-in provider vouches for, and the interface each provider implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from authlib.integrations.httpx_client import AsyncOAuth2Client

from lobe.shared.events.auth import LoginFailure, SignInProvider

SIGN_IN_TIMEOUT_S = 10.0  # each call to a provider


@dataclass(frozen=True)
class Identity:
    provider: SignInProvider
    subject: str  # the provider's stable id for the user
    email: str  # verified by the provider

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2].lower()


class SignInRefused(Exception):
    """The sign-in cannot go on; `reason` goes into auth.login.failed, `message` to the user (never
    a code, a token or the provider's raw answer)."""

    def __init__(
        self, reason: LoginFailure, message: str, status: int, email_domain: str | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status
        self.email_domain = email_domain


def code_flow_client(
    client_id: str, client_secret: str, scope: str, redirect_uri: str, **extra: Any
) -> AsyncOAuth2Client:
    """authlib's client for one sign-in (it keeps the token it fetched, so it is never shared)."""
    return AsyncOAuth2Client(
        client_id=client_id,
        client_secret=client_secret,
        scope=scope,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        timeout=SIGN_IN_TIMEOUT_S,
        **extra,
    )


def provider_error(what: str) -> SignInRefused:
    return SignInRefused("provider_error", f"The sign-in provider failed: {what}.", 502)


class Provider(Protocol):
    @property
    def name(self) -> SignInProvider:
        """Part of each identity's key at billing: (name, subject)."""

    @property
    def display_name(self) -> str: ...

    @property
    def domains(self) -> frozenset[str]:
        """The e-mail domains this provider's users may have; empty = any."""

    async def authorization_url(self, redirect_uri: str, state: str, nonce: str, code_verifier: str) -> str:
        """Where the browser goes to sign in (code flow, PKCE S256)."""

    async def identity(self, code: str, redirect_uri: str, code_verifier: str, nonce: str) -> Identity:
        """Redeem the code; the verified identity, or SignInRefused."""
