"""The state of one sign-in between the login redirect and the callback, kept in the browser: a
short-lived cookie signed like a session (another audience, so neither can stand in for the
other). It binds the callback to the browser that started the sign-in (the `state` must match:
login CSRF), and carries the nonce and the PKCE verifier, so any replica can finish a sign-in
another one began, with nothing stored server-side."""

from __future__ import annotations

import hmac
import secrets
import time
import unicodedata
from urllib.parse import unquote, urlsplit

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
    """Where the browser goes once signed in: a path on this gateway, or a URL on an allowed
    browser origin. Anything else is dropped (the callback then answers JSON, as with none given),
    since it would make the sign-in an open redirect: another site, `//host`, a scheme, and any
    control character, whitespace or backslash, raw or percent-encoded, because browsers strip
    tabs and newlines from a URL and read `\\` as `/` (`/%09/evil.example` becomes `//evil.example`)."""
    if not value or not _plain(value) or not _plain(unquote(value)):
        return None
    parts = urlsplit(value)
    if not parts.scheme and not parts.netloc:
        same_origin = value.startswith("/") and not unquote(value).startswith("//")
        return value if same_origin else None
    if parts.scheme in ("http", "https") and f"{parts.scheme}://{parts.netloc}" in origins:
        return value
    return None


def _plain(text: str) -> bool:
    return not any(c == "\\" or c.isspace() or unicodedata.category(c).startswith("C") for c in text)
