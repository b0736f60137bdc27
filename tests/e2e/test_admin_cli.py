"""`lobe admin` against a running suite: a revoked key or a changed plan holds from the next request,
although the gateway caches who a key belongs to (and on which plan) for ten minutes here."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import nats
import pytest

from lobe.billing.service import BillingService
from lobe.shared.events.chat import CHAT_REQUEST, ChatRequested

from .conftest import billing_settings, start_gateway, start_worker
from .test_chat_path import MESSAGES

LOBE = str(Path(sys.executable).parent / "lobe")
KEY_CACHE_TTL_S = 600.0
PLANS = """
period: month
default_plan: roomy
plans:
  roomy: {tokens: null, cost_usd: null, requests: null, rate_tier: roomy}
  bigger: {tokens: null, cost_usd: null, requests: null, rate_tier: bigger}
  capped: {tokens: null, cost_usd: 0, requests: null, rate_tier: capped}
"""


@dataclass
class Running:
    base_url: str
    nats_url: str
    env: dict[str, str]  # what `lobe admin` needs: DATABASE_URL, NATS_URL, PLANS_FILE
    http: aiohttp.ClientSession

    async def lobe_admin(self, *args: str, status: int = 0) -> str:
        """The real console script, in its own process, while this loop keeps serving: what it
        printed (stderr when `status`, the exit status expected, is not 0)."""
        proc = await asyncio.create_subprocess_exec(
            LOBE, "admin", *args, env={**os.environ, **self.env}, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        assert proc.returncode == status, (out + err).decode()
        return (err if status else out).decode()

    async def new_key(self, user: str, plan: str) -> tuple[str, str]:
        await self.lobe_admin("create-user", user, "--plan", plan)
        printed = await self.lobe_admin("issue-key", user)
        return printed.split()[2], printed.split("api key ")[1].split()[0]

    async def chat(self, key: str) -> tuple[int, dict[str, object]]:
        async with self.http.post(
            f"{self.base_url}/v1/chat/completions",
            json={"model": "mock", "messages": MESSAGES},
            headers={"Authorization": f"Bearer {key}"},
        ) as response:
            return response.status, await response.json()


@pytest.fixture
async def running(nats_url: str, billing_db: str, tmp_path: Path) -> AsyncIterator[Running]:
    """Billing, a worker and a gateway with budget admission, all in this process."""
    plans = tmp_path / "plans.yaml"
    plans.write_text(PLANS)
    env = {"DATABASE_URL": billing_db, "NATS_URL": nats_url, "PLANS_FILE": str(plans)}
    async with BillingService(billing_settings(nats_url, billing_db, plans_file=plans)):
        worker = await start_worker(nats_url)
        runner, base_url = await start_gateway(
            nats_url, billing_enabled=True, key_cache_ttl_s=KEY_CACHE_TTL_S
        )
        async with aiohttp.ClientSession() as http:
            yield Running(base_url, nats_url, env, http)
        await runner.cleanup()
        await worker.stop()


async def test_a_key_revoked_with_lobe_admin_is_refused_by_the_running_gateway_from_the_next_request(
    running: Running, billing_db: str
) -> None:
    """The guarantee (README, "Operate"): once `lobe admin revoke-key` returns, every gateway refuses
    the key. The gateway holds the key for KEY_CACHE_TTL_S (ten minutes, far beyond this test), so
    only billing's `auth.key.revoked` push can explain the refusal of the very next request. No
    wall-clock bound: the time from the commit to the 401 includes the CLI's own exit, which a
    loaded machine stretches past a second without the push being any slower."""
    key_id, key = await running.new_key("carol", "roomy")
    assert (await running.chat(key))[0] == 200  # the gateway now holds the key in its cache
    await running.lobe_admin("revoke-key", key_id)
    status, body = await running.chat(key)  # the very next request
    refused_at = time.time()
    assert status == 401
    assert body["error"]["code"] == "invalid_api_key"  # type: ignore[index]
    conn = await asyncpg.connect(billing_db)
    try:
        revoked_at = await conn.fetchval(
            "SELECT extract(epoch FROM revoked_at) FROM api_keys WHERE id = $1", key_id
        )
    finally:
        await conn.close()
    after_s = refused_at - float(revoked_at)
    print(f"revocation committed -> 401 at the gateway: {after_s * 1000:.0f} ms")
    assert 0 < after_s < KEY_CACHE_TTL_S  # refused after the commit, long before the cache expires


async def test_a_plan_changed_with_lobe_admin_applies_to_the_next_request(running: Running) -> None:
    _, key = await running.new_key("dave", "roomy")
    nc = await nats.connect(running.nats_url)
    try:
        dispatched = await nc.subscribe(CHAT_REQUEST)  # a copy of each request the workers get

        async def plan_of_next_request() -> str:
            status, _ = await running.chat(key)
            assert status == 200
            return ChatRequested.decode((await dispatched.next_msg(timeout=5)).data).caller.plan

        assert await plan_of_next_request() == "roomy"
        await running.lobe_admin("set-plan", "dave", "bigger")
        assert await plan_of_next_request() == "bigger"
    finally:
        await nc.close()
    await running.lobe_admin("set-plan", "dave", "capped")
    status, body = await running.chat(key)
    assert status == 429
    assert body["error"]["code"] == "insufficient_quota"  # type: ignore[index]
    assert "on plan capped" in body["error"]["message"]  # type: ignore[index]


async def test_create_user_on_an_existing_user_says_so_and_changes_nothing(
    running: Running, billing_db: str
) -> None:
    await running.lobe_admin("create-user", "root", "--plan", "bigger", "--email", "root@corp.example")
    await running.lobe_admin("set-role", "root", "admin")
    again = await running.lobe_admin("create-user", "root", "--email", "root@corp.example")
    assert again.strip() == "user root exists, on plan bigger: unchanged"
    refused = await running.lobe_admin(
        "create-user", "root", "--plan", "capped", "--email", "mallory@evil.example", status=1
    )
    assert "user 'root' exists with plan 'bigger' (not 'capped'), email 'root@corp.example'" in refused
    assert "left unchanged (set-plan changes a plan)" in refused
    conn = await asyncpg.connect(billing_db)
    try:
        row = await conn.fetchrow("SELECT plan, email, role FROM users WHERE id = 'root'")
    finally:
        await conn.close()
    assert tuple(row) == ("bigger", "root@corp.example", "admin")
