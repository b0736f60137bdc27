"""Auth domain: facts about credentials, for audit and for caches to drop revoked keys."""

from __future__ import annotations

from pydantic import Field

from lobe.shared.events.envelope import Event

AUTH_KEY_ISSUED = "auth.key.issued"
AUTH_KEY_REVOKED = "auth.key.revoked"
# Command answered by billing (which owns the key table), queue group `billing`.
AUTH_KEY_VERIFY = "auth.key.verify"


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
