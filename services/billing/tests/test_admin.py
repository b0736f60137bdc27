"""Admin operations: the write and its announcement, and what happens when only the write succeeds."""

from __future__ import annotations

import asyncpg
import nats
import pytest

from lobe.billing.admin import Admin, CreatedUser, admin_session
from lobe.billing.errors import NotAnnouncedError, UserExistsError
from lobe.billing.plans import load_plans
from lobe.devtools.servers import NatsServer
from lobe.shared.bus import ensure_streams
from lobe.shared.catalog import BILLING
from lobe.shared.events.auth import AUTH_KEY_ISSUED
from lobe.shared.events.billing import BILLING_ACCOUNT_CHANGED
from lobe.shared.events.streams import EVENTS

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


async def test_creating_an_existing_user_never_changes_its_plan_email_or_role(
    nats_url: str, billing_db: str
) -> None:
    spy = await nats.connect(nats_url)
    async with admin_session(billing_db, nats_url) as admin:
        assert await admin.create_user("root", "premium", "root@corp.example") == CreatedUser("premium", True)
        await admin.set_role("root", "admin")
        changed = await spy.subscribe(BILLING_ACCOUNT_CHANGED)
        # A script's re-run (same values, or none) is a no-op, and announces nothing.
        assert await admin.create_user("root", "premium", "root@corp.example") == CreatedUser(
            "premium", False
        )
        assert await admin.create_user("root") == CreatedUser("premium", False)
        # Another address (whose owner sign-in would then link) or plan: refused, named, unchanged.
        with pytest.raises(
            UserExistsError, match=r"email 'root@corp\.example' \(not 'mallory@evil\.example'\)"
        ):
            await admin.create_user("root", email="mallory@evil.example")
        with pytest.raises(UserExistsError, match=r"plan 'premium' \(not 'free'\).*set-plan"):
            await admin.create_user("root", "free")
    stored = "SELECT concat_ws(' ', plan, email, role) FROM users WHERE id = 'root'"
    assert await fetchval(billing_db, stored) == "premium root@corp.example admin"
    with pytest.raises(nats.errors.TimeoutError):
        await changed.next_msg(timeout=0.2)
    await spy.close()


async def test_the_admin_tasks_run_under_billings_own_nats_user_as_in_a_billing_pod(
    secured_nats: NatsServer, billing_db: str
) -> None:
    # `kubectl exec deploy/lobe-billing -- lobe-admin …` (docs/deploy.md): the pod's NATS user is
    # billing's, whose replies (JetStream acks) may only arrive under _INBOX.billing.
    credentials = secured_nats.users.connect_kwargs(BILLING)
    overrides = {"nats_user": credentials["user"], "nats_password": credentials["password"]}
    async with admin_session(billing_db, secured_nats.url, nats_overrides=overrides) as admin:
        await admin.create_user("root")
        issued = await admin.issue_key("root", "first")  # NotAnnouncedError if no ack came back
    harness = await nats.connect(secured_nats.url, **secured_nats.users.connect_kwargs("harness"))
    try:
        info = await harness.jetstream().stream_info(EVENTS.name, subjects_filter=AUTH_KEY_ISSUED)
        assert (info.state.subjects or {}).get(AUTH_KEY_ISSUED) == 1
    finally:
        await harness.close()
    assert await fetchval(billing_db, "SELECT user_id FROM api_keys WHERE id = $1", issued.id) == "root"
