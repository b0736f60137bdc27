"""API keys on the bus: billing owns the key table, so it answers the gateway's key lookups
(`auth.key.verify`); lobe.billing.admin announces issued and revoked keys."""

from __future__ import annotations

import logging

import asyncpg
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from lobe.shared.events.auth import AUTH_KEY_VERIFY, KeyVerified, KeyVerify
from lobe.shared.events.billing import BILLING_QUEUE

log = logging.getLogger(__name__)

_LOOKUP = """
SELECT k.id, k.user_id, u.plan FROM api_keys k JOIN users u ON u.id = k.user_id
WHERE k.key_hash = $1 AND k.revoked_at IS NULL
"""


async def serve_key_verification(nc: NATS, pool: asyncpg.Pool) -> Subscription:
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
            reply = reply.model_copy(
                update={"user_id": row["user_id"], "api_key_id": row["id"], "plan": row["plan"]}
            )
        await msg.respond(reply.encode())

    return await nc.subscribe(AUTH_KEY_VERIFY, queue=BILLING_QUEUE, cb=on_verify)
