"""API keys: generated here, shown once, stored only as a SHA-256 hash plus a display prefix."""

from __future__ import annotations

import hashlib
import secrets

import asyncpg

KEY_PREFIX = "lobe-sk-"
DISPLAY_CHARS = 12


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_CHARS]


async def user_for_key(conn: asyncpg.Pool | asyncpg.Connection, key: str) -> tuple[str, str] | None:
    """(user_id, api_key_id) of a live key, or None for an unknown or revoked one."""
    row = await conn.fetchrow(
        "SELECT user_id, id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", hash_key(key)
    )
    return (row["user_id"], row["id"]) if row else None
