"""Admin operations: the write and its announcement, and what happens when only the write succeeds."""

from __future__ import annotations

import asyncpg
import nats
import pytest

from lobe.billing.admin import Admin
from lobe.billing.errors import NotAnnouncedError
from lobe.billing.plans import load_plans
from lobe.shared.bus import ensure_streams

from .support import fetchval


async def test_a_revocation_that_cannot_be_announced_is_stored_reported_and_announced_when_run_again(
    nats_url: str, billing_db: str
) -> None:
    nc = await nats.connect(nats_url)
    conn = await asyncpg.connect(billing_db)
    try:
        js = nc.jetstream()
        await ensure_streams(js, replicas=1)
        admin = Admin(conn, js, load_plans())
        await admin.create_user("ivy")
        issued = await admin.issue_key("ivy")
        await js.delete_stream("EVENTS")  # JetStream cannot store the fact any more
        with pytest.raises(NotAnnouncedError, match=r"auth\.key\.revoked") as caught:
            await admin.revoke_key(issued.id)
        assert caught.value.ident == issued.id
        assert await fetchval(billing_db, "SELECT revoked_at IS NOT NULL FROM api_keys") is True
        await ensure_streams(js, replicas=1)
        assert await admin.revoke_key(issued.id) == "ivy"  # idempotent: this time it is announced
    finally:
        await conn.close()
        await nc.close()
