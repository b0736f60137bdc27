"""`auth.key.verify` on a real NATS server: billing answers with the key's owner, plan and effective
rate-limit tier (the user's override, else the plan's), so the gateway limits without asking again."""

from __future__ import annotations

import hashlib
import uuid

import nats

from lobe.billing.admin import admin_session
from lobe.billing.plans import Override
from lobe.billing.service import BillingService
from lobe.shared.events.auth import AUTH_KEY_VERIFY, KeyVerified, KeyVerify


async def verify(nats_url: str, key: str) -> KeyVerified:
    nc = await nats.connect(nats_url)
    try:
        question = KeyVerify(request_id=uuid.uuid4().hex, key_sha256=hashlib.sha256(key.encode()).hexdigest())
        reply = await nc.request(AUTH_KEY_VERIFY, question.encode(), timeout=5)
        return KeyVerified.decode(reply.data)
    finally:
        await nc.close()


async def test_a_key_is_answered_with_its_plans_rate_tier_unless_the_user_has_an_override(
    billing: BillingService, nats_url: str, billing_db: str
) -> None:
    async with admin_session(billing_db, nats_url) as admin:
        await admin.create_user("carol", plan="basic")
        await admin.create_user("dave", plan="free")
        carol = await admin.issue_key("carol")
        dave = await admin.issue_key("dave")
        await admin.set_limits("dave", Override(rate_tier="enterprise"))

    on_plan = await verify(nats_url, carol.key)
    assert (on_plan.valid, on_plan.user_id, on_plan.plan, on_plan.rate_tier) == (
        True,
        "carol",
        "basic",
        "basic",
    )
    overridden = await verify(nats_url, dave.key)
    assert (overridden.plan, overridden.rate_tier) == ("free", "enterprise")
    unknown = await verify(nats_url, "lobe-sk-nobody")
    assert (unknown.valid, unknown.rate_tier) == (False, None)
