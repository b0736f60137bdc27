"""The state of one sign-in between the login redirect and the callback, kept in the browser: a
short-lived cookie signed like a session (another audience, so neither can stand in for the
other). It binds the callback to the browser that started the sign-in (the `state` must match:
login CSRF), and carries the nonce and the PKCE verifier, so any replica can finish a sign-in
another one began, with nothing stored server-side."""

from __future__ import annotations

import hmac
import secrets
import time
from urllib.parse import urlsplit

from authlib.common.security import generate_token
from pydantic import BaseModel, ConfigDict, ValidationError

from lobe.gateway.auth.identity import SignInRefused
from lobe.gateway.auth.session_tokens import TokenRefused, TokenSigner
from lobe.shared.events.auth import SignInProvider

FLOW_COOKIE = "lobe_sign_in"
FLOW_AUDIENCE = "lobe-sign-in"
FLOW_TTL_S = 600  # time to sign in at the provider
CALLBACK_PATH = "/auth/callback/"


class SignInFlow(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    provider: SignInProvider
    state: str
    nonce: str
    verifier: str
    return_to: str | None = None


def new_flow(provider: SignInProvider, return_to: str | None) -> SignInFlow:
    # RFC 7636: a verifier of 43 to 128 characters from the unreserved set.
    return SignInFlow(
        provider=provider,
        state=secrets.token_urlsafe(24),
        nonce=secrets.token_urlsafe(24),
        verifier=generate_token(64),
        return_to=return_to,
    )


def seal(signer: TokenSigner, flow: SignInFlow) -> str:
    now = int(time.time())
    return signer.sign(
        {**flow.model_dump(exclude_none=True), "iat": now, "exp": now + FLOW_TTL_S}, FLOW_AUDIENCE
    )


def unseal(signer: TokenSigner, cookie: str | None, provider: str, state: str | None) -> SignInFlow:
    """The flow this browser started with this provider, whose state the callback carries."""
    refused = SignInRefused(
        "state_mismatch", "This sign-in expired or was started elsewhere; sign in again.", 400
    )
    if not cookie or not state:
        raise refused
    try:
        flow = SignInFlow.model_validate(signer.open(cookie, FLOW_AUDIENCE))
    except (TokenRefused, ValidationError):
        raise refused from None
    if flow.provider != provider or not hmac.compare_digest(flow.state.encode(), state.encode()):
        raise refused
    return flow


def safe_return_to(value: str | None, origins: frozenset[str]) -> str | None:
    """A path on this gateway, or a URL on an allowed browser origin; anything else (another site,
    `//host`, a scheme) would make the sign-in an open redirect."""
    if not value:
        return None
    if value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and f"{parts.scheme}://{parts.netloc}" in origins:
        return value
    raise SignInRefused("state_mismatch", "return_to must be a path here or an allowed origin.", 400)
