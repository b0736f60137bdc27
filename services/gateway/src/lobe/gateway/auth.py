"""API key authentication.

Keys are held as SHA-256 digests only, so a memory dump or a log line never shows one. The
bootstrap keys come from GATEWAY_API_KEYS; stored keys (issued through billing) come later
through the same `ApiKeyStore` lookup.
"""

from __future__ import annotations

import hashlib

from aiohttp import web

from lobe.gateway.errors import ApiError
from lobe.shared.events.chat import Caller


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyStore:
    def __init__(self, callers_by_digest: dict[str, Caller]) -> None:
        self.callers_by_digest = callers_by_digest

    @classmethod
    def from_spec(cls, spec: str) -> ApiKeyStore:
        """Parse `key:user_id[:plan],...`; a malformed entry stops start-up with its position."""
        callers: dict[str, Caller] = {}
        for position, entry in enumerate(filter(None, (e.strip() for e in spec.split(","))), start=1):
            parts = entry.split(":")
            if len(parts) not in (2, 3) or not all(parts):
                raise ValueError(f"GATEWAY_API_KEYS entry {position} is not 'key:user_id[:plan]'")
            key, user_id, plan = parts[0], parts[1], parts[2] if len(parts) == 3 else "free"
            digest = key_digest(key)
            callers[digest] = Caller(user_id=user_id, api_key_id=digest[:16], plan=plan)
        return cls(callers)

    def authenticate(self, request: web.Request) -> Caller:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401, "You didn't provide an API key. Use 'Authorization: Bearer YOUR_KEY'.", "missing_api_key"
            )
        caller = self.callers_by_digest.get(key_digest(token.strip()))
        if caller is None:
            raise ApiError(401, "Incorrect API key provided.", "invalid_api_key")
        return caller
