"""Session JWTs: signed with the key ring's signer, verified against every key in it.

A token is refused with a reason the 401 can name (expired, revoked, ...) but never with the text
of the library's exception, which may quote the token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from joserfc import jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwt import JWTClaimsRegistry
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lobe.gateway.auth.signing_keys import KeyRing
from lobe.shared.events.auth import Role

ISSUER = "lobe-gateway"
SESSION_AUDIENCE = "lobe"

Refusal = Literal["malformed", "unknown_kid", "bad_signature", "expired", "invalid_claims", "revoked"]


class TokenRefused(Exception):
    """A token that is not a valid session; `reason` is safe to show and to log."""

    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason)
        self.reason = reason


class SessionClaims(BaseModel):
    """What a session token says about its holder (JWT claim names)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    sub: str = Field(min_length=1, max_length=128, description="The user id in billing.")
    email: str
    role: Role
    plan: str
    rate_tier: str | None = None
    sid: str = Field(min_length=1, max_length=64, description="The session id (revocation).")
    iat: int
    exp: int

    def seconds_left(self, now: float | None = None) -> int:
        return max(0, self.exp - int(now if now is not None else time.time()))


def looks_like_jwt(token: str) -> bool:
    """A compact JWS (three segments, a JSON header): never looked up as an API key."""
    return token.count(".") == 2 and token.startswith("eyJ")


@dataclass(frozen=True)
class TokenSigner:
    ring: KeyRing

    def sign(self, claims: dict[str, Any], audience: str) -> str:
        header = {"alg": self.ring.algorithm, "kid": self.ring.kid, "typ": "JWT"}
        body = {**claims, "iss": ISSUER, "aud": audience}
        return jwt.encode(header, body, self.ring.signer, algorithms=[self.ring.algorithm])

    def open(self, token: str, audience: str) -> dict[str, Any]:
        """The claims of a token this ring signed for `audience`, unexpired; else TokenRefused."""
        try:
            decoded = jwt.decode(token, self.ring.keys, algorithms=list(self.ring.algorithms))
        except InvalidKeyIdError:
            raise TokenRefused("unknown_kid") from None
        except BadSignatureError:
            raise TokenRefused("bad_signature") from None
        except (JoseError, ValueError, TypeError):
            raise TokenRefused("malformed") from None
        registry = JWTClaimsRegistry(
            leeway=0,
            iss={"essential": True, "value": ISSUER},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            iat={"essential": True},
        )
        try:
            registry.validate(decoded.claims)
        except ExpiredTokenError:
            raise TokenRefused("expired") from None
        except (JoseError, ValueError, TypeError):
            raise TokenRefused("invalid_claims") from None
        return dict(decoded.claims)

    def sign_session(self, claims: SessionClaims) -> str:
        return self.sign(claims.model_dump(exclude_none=True), SESSION_AUDIENCE)

    def open_session(self, token: str) -> SessionClaims:
        try:
            return SessionClaims.model_validate(self.open(token, SESSION_AUDIENCE))
        except ValidationError:
            raise TokenRefused("invalid_claims") from None
