"""Auth domain: facts about credentials, for audit and for caches to drop revoked keys."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lobe.shared.events.envelope import Event

AUTH_KEY_ISSUED = "auth.key.issued"
AUTH_KEY_REVOKED = "auth.key.revoked"
AUTH_LOGIN_FAILED = "auth.login.failed"


class ApiKeyIssued(Event):
    user_id: str
    api_key_id: str
    key_prefix: str = Field(max_length=16, description="First characters, for display only.")


class ApiKeyRevoked(Event):
    user_id: str
    api_key_id: str


class LoginFailed(Event):
    method: Literal["api_key", "jwt", "oidc"]
    reason: str
    client_ip: str | None = None
