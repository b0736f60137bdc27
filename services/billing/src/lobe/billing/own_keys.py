"""A signed-in user's own API keys: `auth.key.issue`, `auth.key.list`, `auth.key.revoke` (the
gateway's /v1/keys and its console ask). Issuing and revoking are Admin's (so the facts the
gateways listen for go out the one way); this adds the owner check and the plan's cap on live
keys, `max_api_keys`.

The cap is checked and the key inserted in one transaction holding the user's row, so two
creations at once cannot both take the last free place.
"""

from __future__ import annotations

import asyncpg
from nats.js import JetStreamContext

from lobe.billing.admin import Admin
from lobe.billing.errors import NotFoundError
from lobe.billing.plans import PlanBook
from lobe.shared.events.auth import (
    KeyIssue,
    KeyIssueAnswer,
    KeyList,
    KeyListAnswer,
    KeyRevoke,
    KeyRevokeAnswer,
    OwnKey,
)

# Last used: the latest ledger row written with the key (the ledger is indexed by user and time).
_KEYS = """
SELECT k.id, k.name, k.prefix, k.created_at, k.revoked_at, used.at AS last_used_at
FROM api_keys k LEFT JOIN (
    SELECT api_key_id, max(occurred_at) AS at FROM usage_ledger WHERE user_id = $1 GROUP BY api_key_id
) used ON used.api_key_id = k.id
WHERE k.user_id = $1 ORDER BY k.created_at DESC, k.id
"""
_LIVE = "SELECT count(*) FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL"


class OwnKeys:
    def __init__(self, pool: asyncpg.Pool, js: JetStreamContext, plans: PlanBook) -> None:
        self.pool = pool
        self.js = js
        self.plans = plans

    async def issue(self, ask: KeyIssue) -> KeyIssueAnswer:
        async with self.pool.acquire() as conn, conn.transaction():
            plan = await conn.fetchval("SELECT plan FROM users WHERE id = $1 FOR UPDATE", ask.user_id)
            if plan is None:
                return KeyIssueAnswer(request_id=ask.request_id, refusal="unknown_user")
            cap = self.plans.max_api_keys(plan)
            if cap is not None and await conn.fetchval(_LIVE, ask.user_id) >= cap:
                return KeyIssueAnswer(request_id=ask.request_id, refusal="key_limit", max_api_keys=cap)
            issued = await Admin(conn, self.js, self.plans).issue_key(ask.user_id, ask.name)
            row = await conn.fetchrow("SELECT created_at FROM api_keys WHERE id = $1", issued.id)
        key = OwnKey(id=issued.id, name=ask.name, prefix=issued.prefix, created_at=row["created_at"])
        return KeyIssueAnswer(request_id=ask.request_id, key=key, secret=issued.key, max_api_keys=cap)

    async def list(self, ask: KeyList) -> KeyListAnswer:
        plan = await self.pool.fetchval("SELECT plan FROM users WHERE id = $1", ask.user_id)
        keys = await keys_of(self.pool, ask.user_id)
        return KeyListAnswer(request_id=ask.request_id, keys=keys, max_api_keys=self.plans.max_api_keys(plan))

    async def revoke(self, ask: KeyRevoke) -> KeyRevokeAnswer:
        owner = await self.pool.fetchval("SELECT user_id FROM api_keys WHERE id = $1", ask.api_key_id)
        if owner != ask.user_id:  # another user's key is as unknown as a key that never was
            return KeyRevokeAnswer(request_id=ask.request_id, revoked=False, refusal="not_found")
        try:
            await Admin(self.pool, self.js, self.plans).revoke_key(ask.api_key_id)
        except NotFoundError:
            return KeyRevokeAnswer(request_id=ask.request_id, revoked=False, refusal="not_found")
        return KeyRevokeAnswer(request_id=ask.request_id, revoked=True)


async def keys_of(db: asyncpg.Pool, user_id: str) -> list[OwnKey]:
    """A user's keys, newest first (the admin API's list of any user's keys reads it too)."""
    return [OwnKey(**dict(row)) for row in await db.fetch(_KEYS, user_id)]
