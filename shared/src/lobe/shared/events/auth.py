"""Auth domain: API key lookups, sign-in, and facts about credentials and sessions (for audit,
and for every gateway to drop a revoked key or session at once)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from lobe.shared.events.envelope import Event

AUTH_KEY_ISSUED = "auth.key.issued"
AUTH_KEY_REVOKED = "auth.key.revoked"
# Commands answered by billing (which owns the key and user tables), queue group `billing`.
AUTH_KEY_VERIFY = "auth.key.verify"
AUTH_USER_RESOLVE = "auth.user.resolve"
# A signed-in user's own keys (the console, `/v1/keys`): commands answered by billing.
AUTH_KEY_ISSUE = "auth.key.issue"
AUTH_KEY_LIST = "auth.key.list"
AUTH_KEY_REVOKE = "auth.key.revoke"
# Facts about sessions, published by the gateway that signs them.
AUTH_LOGIN_SUCCEEDED = "auth.login.succeeded"
AUTH_LOGIN_FAILED = "auth.login.failed"
AUTH_LOGIN_ENDED = "auth.login.ended"

# The shape of every key billing issues (lobe.billing.keys.new_key): a token of another shape is
# refused by the gateway without asking billing (only bootstrap keys may look different).
ISSUED_KEY = re.compile(r"lobe-sk-[A-Za-z0-9_-]{43}")

Role = Literal["user", "admin"]
# A sign-in provider as the gateway's operator named it: `oidc`, `google`, `github`, or a name of
# OIDC_PROVIDERS (the gateway checks its shape: lobe.gateway.auth.provider_config). Part of an
# identity's key, (provider, subject), so a renamed provider's users are new identities. No pattern
# here: a constraint added to a published field would refuse what an older producer sends.
SignInProvider = Annotated[
    str, Field(description="The sign-in provider's name in the gateway's configuration (e.g. `google`).")
]
SessionEndReason = Literal["signed_out", "revoked"]


class ApiKeyIssued(Event):
    user_id: str
    api_key_id: str
    key_prefix: str = Field(max_length=16, description="First characters, for display only.")


class ApiKeyRevoked(Event):
    user_id: str
    api_key_id: str


class KeyVerify(Event):
    """`auth.key.verify`: whose key is this? Carries the key's SHA-256, never the key."""

    key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class KeyVerified(Event):
    """Reply to KeyVerify: the key's owner, or valid=False for an unknown or revoked key."""

    valid: bool
    user_id: str | None = None
    api_key_id: str | None = None
    plan: str | None = None
    rate_tier: str | None = Field(
        default=None, description="The effective rate-limit tier: the user's override, else the plan's."
    )


class UserResolve(Event):
    """`auth.user.resolve`: someone signed in with this identity (the provider vouched for the
    e-mail); which user is it? Billing finds the user (by identity, else by e-mail) or creates one
    on the default plan."""

    provider: SignInProvider
    subject: str = Field(min_length=1, max_length=255, description="The provider's stable user id.")
    email: str = Field(min_length=3, max_length=320, description="Verified by the provider.")


class UserResolved(Event):
    """Reply to UserResolve: the user the session belongs to, with what the session claims."""

    user_id: str
    role: Role
    plan: str
    rate_tier: str | None = Field(default=None, description="The user's rate-limit tier, when set.")
    created: bool = Field(description="This sign-in created the user.")


class LoginSucceeded(Event):
    """`auth.login.succeeded`: a session was signed (`request_id` is the session id)."""

    user_id: str
    session_id: str
    provider: SignInProvider
    expires_at: int = Field(description="When the session ends at the latest (Unix seconds).")
    new_user: bool


LoginFailure = Literal[
    "state_mismatch",
    "provider_error",
    "code_refused",
    "token_invalid",
    "email_missing",
    "email_unverified",
    "domain_not_allowed",
    "users_unavailable",
    "sessions_unavailable",
]


class LoginFailed(Event):
    """`auth.login.failed`: a sign-in was refused (`request_id` is the sign-in attempt). Carries
    the e-mail's domain at most: never the address, a code or a token."""

    provider: SignInProvider
    reason: LoginFailure
    email_domain: str | None = None


class LoginEnded(Event):
    """`auth.login.ended`: a session ended before its expiry (`request_id` is the session id):
    its holder signed out, or an admin revoked it. Every gateway refuses it from then on."""

    user_id: str
    session_id: str
    expires_at: int = Field(description="The session's expiry (Unix seconds): forget it after.")
    reason: SessionEndReason


KeyRefusal = Literal["key_limit", "unknown_user", "not_found"]


class OwnKey(BaseModel):
    """One of a user's keys as its owner sees it: never the secret, never the hash."""

    id: str
    name: str | None = None
    prefix: str = Field(max_length=16, description="First characters, for display only.")
    created_at: datetime
    last_used_at: datetime | None = Field(default=None, description="The latest usage recorded with it.")
    revoked_at: datetime | None = None


class KeyIssue(Event):
    """`auth.key.issue`: a user asks for a key of their own; billing refuses past the plan's
    `max_api_keys` live keys."""

    user_id: str
    name: str | None = Field(default=None, max_length=100)


class KeyIssueAnswer(Event):
    """Reply to KeyIssue: the key (its secret shown this once), or why not."""

    key: OwnKey | None = None
    secret: str | None = Field(default=None, description="The key itself: returned once, never stored.")
    refusal: KeyRefusal | None = None
    max_api_keys: int | None = Field(default=None, description="The plan's cap on live keys; None: no cap.")


class KeyList(Event):
    """`auth.key.list`: a user's keys, live and revoked."""

    user_id: str


class KeyListAnswer(Event):
    keys: list[OwnKey]
    max_api_keys: int | None = Field(default=None, description="The plan's cap on live keys; None: no cap.")


class KeyRevoke(Event):
    """`auth.key.revoke`: a user revokes a key of their own (another user's is not found)."""

    user_id: str
    api_key_id: str


class KeyRevokeAnswer(Event):
    revoked: bool
    refusal: KeyRefusal | None = None
