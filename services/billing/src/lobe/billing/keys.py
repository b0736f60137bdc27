"""API keys: generated here, shown once, stored only as a SHA-256 hash plus a display prefix."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import asyncpg

KEY_PREFIX = "lobe-sk-"
DISPLAY_CHARS = 12

# The rate tier in force: the user's override, else the plan's (as for sessions, lobe.billing.users).
_OWNER = """
SELECT k.id, k.user_id, u.plan, coalesce(o.rate_tier, p.rate_tier) AS rate_tier
FROM api_keys k JOIN users u ON u.id = k.user_id
LEFT JOIN plan_overrides o ON o.user_id = u.id LEFT JOIN plans p ON p.name = u.plan
WHERE k.key_hash = $1 AND k.revoked_at IS NULL
"""


@dataclass(frozen=True)
class KeyOwner:
    user_id: str
    api_key_id: str
    plan: str
    rate_tier: str | None = None


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_CHARS]


async def owner_of(db: asyncpg.Pool | asyncpg.Connection, key_hash: bytes) -> KeyOwner | None:
    """Who a live key (by its SHA-256) belongs to, on which plan; None for an unknown or revoked one.
    The usage API asks with the key it was shown, the gateway (`auth.key.verify`) with its hash."""
    row = await db.fetchrow(_OWNER, key_hash)
    return KeyOwner(row["user_id"], row["id"], row["plan"], row["rate_tier"]) if row else None
