"""API keys on the bus: billing owns the key table, so it answers the gateway's key lookups
(`auth.key.verify`) and announces issued and revoked keys (`auth.key.*` facts on EVENTS)."""

from __future__ import annotations

import logging

import asyncpg
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from pydantic import ValidationError

from lobe.billing.plans import Override, PlanBook
from lobe.shared.events.auth import (
    AUTH_KEY_ISSUED,
    AUTH_KEY_REVOKED,
    AUTH_KEY_VERIFY,
    ApiKeyIssued,
    ApiKeyRevoked,
    KeyVerified,
    KeyVerify,
)
from lobe.shared.events.billing import BILLING_QUEUE
from lobe.shared.facts import publish_fact

log = logging.getLogger(__name__)

_LOOKUP = """
SELECT k.id, k.user_id, u.plan, o.rate_tier FROM api_keys k JOIN users u ON u.id = k.user_id
LEFT JOIN plan_overrides o ON o.user_id = k.user_id
WHERE k.key_hash = $1 AND k.revoked_at IS NULL
"""


async def serve_key_verification(nc: NATS, pool: asyncpg.Pool, plans: PlanBook) -> Subscription:
    """Answer key lookups with the owner, their plan and their effective rate-limit tier (the
    user's override, else the plan's), so the gateway limits them without asking again."""

    async def on_verify(msg: Msg) -> None:
        try:
            ask = KeyVerify.decode(msg.data)
        except ValidationError as exc:
            log.warning("malformed key verification: %s", exc.errors()[:1])
            return
        try:
            row = await pool.fetchrow(_LOOKUP, bytes.fromhex(ask.key_sha256))
        except (OSError, asyncpg.PostgresError) as exc:  # no answer: the gateway's fail mode decides
            log.error("key lookup failed: %s", exc)
            return
        reply = KeyVerified(request_id=ask.request_id, valid=row is not None)
        if row is not None:
            tier = plans.limits(row["plan"], Override(rate_tier=row["rate_tier"])).rate_tier
            reply = reply.model_copy(
                update={
                    "user_id": row["user_id"],
                    "api_key_id": row["id"],
                    "plan": row["plan"],
                    "rate_tier": tier,
                }
            )
        await msg.respond(reply.encode())

    return await nc.subscribe(AUTH_KEY_VERIFY, queue=BILLING_QUEUE, cb=on_verify)


async def announce_issued(js: JetStreamContext | None, user_id: str, key_id: str, prefix: str) -> None:
    if js is not None:
        event = ApiKeyIssued(request_id=key_id, user_id=user_id, api_key_id=key_id, key_prefix=prefix)
        await publish_fact(js, AUTH_KEY_ISSUED, event)


async def announce_revoked(js: JetStreamContext | None, user_id: str, key_id: str) -> None:
    """Gateways drop the key from their caches at once instead of at the cache's expiry. Best
    effort: the change is committed, and caches expire on their own if this is lost."""
    if js is not None:
        event = ApiKeyRevoked(request_id=key_id, user_id=user_id, api_key_id=key_id)
        await publish_fact(js, AUTH_KEY_REVOKED, event)
