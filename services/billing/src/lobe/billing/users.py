"""Who signed in: billing owns users, so it answers the gateway's `auth.user.resolve`. An identity
(provider, subject) it knows is that user; a new one is linked to the user with the same e-mail
(the provider verified it), else a user is created on the default plan."""

from __future__ import annotations

import secrets

import asyncpg

from lobe.billing.plans import PlanBook
from lobe.shared.events.auth import UserResolve, UserResolved

# The user, their role and plan, and the rate tier in force (a user override, else the plan's).
_ACCOUNT = """
SELECT u.id, u.role, u.plan, coalesce(o.rate_tier, p.rate_tier) AS rate_tier
FROM users u LEFT JOIN plan_overrides o ON o.user_id = u.id LEFT JOIN plans p ON p.name = u.plan
WHERE u.id = $1
"""
_BY_IDENTITY = """
UPDATE user_identities SET last_sign_in_at = now() WHERE provider = $1 AND subject = $2 RETURNING user_id
"""
_BY_EMAIL = "SELECT id FROM users WHERE lower(email) = lower($1) ORDER BY created_at LIMIT 1"
_LINK = """
INSERT INTO user_identities (provider, subject, user_id) VALUES ($1, $2, $3)
ON CONFLICT (provider, subject) DO NOTHING
"""
_LINKED = "SELECT user_id FROM user_identities WHERE provider = $1 AND subject = $2"
_CREATE = "INSERT INTO users (id, email, plan) VALUES ($1, $2, $3)"


class UserDirectory:
    def __init__(self, pool: asyncpg.Pool, plans: PlanBook) -> None:
        self.pool = pool
        self.plans = plans

    async def resolve(self, ask: UserResolve) -> UserResolved:
        """Raises asyncpg's errors (or OSError) when the database is away: the gateway's sign-in
        then answers 503, having heard nothing."""
        async with self.pool.acquire() as conn, conn.transaction():
            created = False
            user_id = await conn.fetchval(_BY_IDENTITY, ask.provider, ask.subject)
            if user_id is None:
                user_id = await conn.fetchval(_BY_EMAIL, ask.email)
                if user_id is None:
                    user_id, created = "usr_" + secrets.token_hex(8), True
                    await conn.execute(_CREATE, user_id, ask.email, self.plans.spec.default_plan)
                await conn.execute(_LINK, ask.provider, ask.subject, user_id)
                # Two first sign-ins of one identity at once: the one that linked first wins.
                linked = await conn.fetchval(_LINKED, ask.provider, ask.subject)
                if created and linked != user_id:
                    await conn.execute("DELETE FROM users WHERE id = $1", user_id)
                    created = False
                user_id = linked
            row = await conn.fetchrow(_ACCOUNT, user_id)
        return UserResolved(
            request_id=ask.request_id,
            user_id=row["id"],
            role=row["role"],
            plan=self.plans.limits(row["plan"]).plan,
            rate_tier=row["rate_tier"],
            created=created,
        )
