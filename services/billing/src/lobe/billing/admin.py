"""Admin operations (used by the admin HTTP API and the `lobe` CLI): users, keys, plans, limits."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeAlias

import asyncpg

from lobe.billing.errors import NotFoundError
from lobe.billing.keys import display_prefix, hash_key, new_key
from lobe.billing.plans import Override

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection


@dataclass(frozen=True)
class IssuedKey:
    id: str
    user_id: str
    key: str  # the secret: returned once, never stored
    prefix: str


async def create_user(db: Db, user_id: str, plan: str = "free", email: str | None = None) -> None:
    """Create the user, or update plan and email if it exists (idempotent for scripts)."""
    await db.execute(
        """INSERT INTO users (id, plan, email) VALUES ($1, $2, $3)
           ON CONFLICT (id) DO UPDATE SET plan = excluded.plan, email = coalesce(excluded.email, users.email)""",
        user_id,
        plan,
        email,
    )


async def issue_key(db: Db, user_id: str, name: str | None = None, key: str | None = None) -> IssuedKey:
    """Issue a key (or register a given one, e.g. `lobe dev`'s fixed dev key)."""
    key = key or new_key()
    key_id = "key_" + secrets.token_hex(8)
    try:
        await db.execute(
            "INSERT INTO api_keys (id, user_id, key_hash, prefix, name) VALUES ($1, $2, $3, $4, $5)",
            key_id,
            user_id,
            hash_key(key),
            display_prefix(key),
            name,
        )
    except asyncpg.ForeignKeyViolationError as exc:
        raise NotFoundError("user", user_id) from exc
    return IssuedKey(key_id, user_id, key, display_prefix(key))


async def revoke_key(db: Db, key_id: str) -> str:
    """Revoke a key; returns its user id. Revoking twice keeps the first revocation time."""
    user_id = await db.fetchval(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING user_id", key_id
    )
    if user_id is None:
        raise NotFoundError("api key", key_id)
    return str(user_id)


async def set_plan(db: Db, user_id: str, plan: str) -> None:
    if await db.fetchval("UPDATE users SET plan = $2 WHERE id = $1 RETURNING id", user_id, plan) is None:
        raise NotFoundError("user", user_id)


async def set_limits(db: Db, user_id: str, override: Override) -> None:
    """Replace the user's overrides (None = use the plan's value)."""
    try:
        await db.execute(
            """INSERT INTO plan_overrides (user_id, tokens_limit, cost_limit_usd, requests_limit, rate_tier)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (user_id) DO UPDATE SET tokens_limit = excluded.tokens_limit,
                   cost_limit_usd = excluded.cost_limit_usd, requests_limit = excluded.requests_limit,
                   rate_tier = excluded.rate_tier, updated_at = now()""",
            user_id,
            override.tokens,
            override.cost_usd,
            override.requests,
            override.rate_tier,
        )
    except asyncpg.ForeignKeyViolationError as exc:
        raise NotFoundError("user", user_id) from exc


async def account(db: Db, user_id: str) -> tuple[str | None, Override]:
    """The user's plan name (None for a user billing has only seen in usage) and overrides."""
    row = await db.fetchrow(
        """SELECT u.plan, o.tokens_limit, o.cost_limit_usd, o.requests_limit, o.rate_tier
           FROM users u LEFT JOIN plan_overrides o ON o.user_id = u.id WHERE u.id = $1""",
        user_id,
    )
    if row is None:
        return None, Override()
    cost: Decimal | None = row["cost_limit_usd"]
    return row["plan"], Override(row["tokens_limit"], cost, row["requests_limit"], row["rate_tier"])
