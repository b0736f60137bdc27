"""Who signed in: billing owns users, so it answers the gateway's `auth.user.resolve`. An identity
(provider, subject) it knows is that user. A new one takes over the account an admin provisioned
for its e-mail (the provider verified it) only while that account has no identity yet; otherwise
it gets a user of its own on the default plan (without the address when another user has it:
addresses are unique, and the one already there is that user's). Linking by e-mail to an account someone already
signs in to would hand it (an admin's, say) to whoever gets a provider to vouch for the address.
"""

from __future__ import annotations

import logging
import secrets

import asyncpg

from lobe.billing.plans import PlanBook
from lobe.shared.events.auth import UserResolve, UserResolved

log = logging.getLogger(__name__)

# The user, their role and plan, and the rate tier in force (a user override, else the plan's).
_ACCOUNT = """
SELECT u.id, u.role, u.plan, coalesce(o.rate_tier, p.rate_tier) AS rate_tier
FROM users u LEFT JOIN plan_overrides o ON o.user_id = u.id LEFT JOIN plans p ON p.name = u.plan
WHERE u.id = $1
"""
_BY_IDENTITY = """
UPDATE user_identities SET last_sign_in_at = now() WHERE provider = $1 AND subject = $2 RETURNING user_id
"""
# Locked, so two first sign-ins with one address queue here; _CLAIM then sees the first one's link.
_PROVISIONED = """
SELECT u.id FROM users u
WHERE lower(u.email) = lower($1) AND NOT EXISTS (SELECT 1 FROM user_identities i WHERE i.user_id = u.id)
ORDER BY u.created_at LIMIT 1 FOR UPDATE
"""
_CLAIM = """
INSERT INTO user_identities (provider, subject, user_id)
SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM user_identities WHERE user_id = $3)
ON CONFLICT (provider, subject) DO NOTHING RETURNING user_id
"""
_LINK = """
INSERT INTO user_identities (provider, subject, user_id) VALUES ($1, $2, $3)
ON CONFLICT (provider, subject) DO NOTHING
"""
_TAKEN = "SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($1))"
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
                user_id, created = await self._first_sign_in(conn, ask)
            row = await conn.fetchrow(_ACCOUNT, user_id)
        return UserResolved(
            request_id=ask.request_id,
            user_id=row["id"],
            role=row["role"],
            plan=self.plans.limits(row["plan"]).plan,
            rate_tier=row["rate_tier"],
            created=created,
        )

    async def _first_sign_in(self, conn: asyncpg.Connection, ask: UserResolve) -> tuple[str, bool]:
        """(the user this new identity is, whether it was created for it)."""
        provisioned = await conn.fetchval(_PROVISIONED, ask.email)
        if provisioned is not None and await conn.fetchval(_CLAIM, ask.provider, ask.subject, provisioned):
            return str(provisioned), False
        email: str | None = ask.email
        if await conn.fetchval(_TAKEN, ask.email):
            # Someone else signs in with this address: a second provider of theirs, or an attacker
            # whose provider vouches for it. Not a link either way; worth an operator's look.
            log.warning("a new %s identity claims an address another user signs in with", ask.provider)
            email = None
        user_id = "usr_" + secrets.token_hex(8)
        await conn.execute(_CREATE, user_id, email, self.plans.spec.default_plan)
        await conn.execute(_LINK, ask.provider, ask.subject, user_id)
        # Two first sign-ins of one identity at once: the one that linked first wins.
        linked = await conn.fetchval(_LINKED, ask.provider, ask.subject)
        if linked != user_id:
            await conn.execute("DELETE FROM users WHERE id = $1", user_id)
            return str(linked), False
        return user_id, True
