"""The `lobe` console script."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import nats

from lobe.devtools.ports import free_port
from lobe.shared.events.auth import AUTH_KEY_REVOKED, ApiKeyRevoked
from lobe.shared.events.billing import (
    BILLING_ACCOUNT_CHANGED,
    BILLING_USAGE_RESET,
    AccountChanged,
    UsageReset,
)

LOBE = str(Path(sys.executable).parent / "lobe")


def lobe(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "NATS_URL")} | env
    return subprocess.run([LOBE, *args], env=environ, capture_output=True, text=True, timeout=60, check=False)


async def lobe_async(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`lobe` run off the event loop, so the test can receive what it publishes meanwhile."""
    return await asyncio.to_thread(lobe, *args, **env)


def test_db_migrate_prints_each_applied_version_then_reports_up_to_date(database_url: str) -> None:
    first = lobe("db", "migrate", DATABASE_URL=database_url)
    assert first.returncode == 0, first.stderr
    assert "applied migration 0001_init" in first.stdout
    again = lobe("db", "migrate", DATABASE_URL=database_url)
    assert again.returncode == 0, again.stderr
    assert "applied migration" not in again.stdout
    assert "up to date" in again.stdout


def test_db_migrate_without_database_url_says_so() -> None:
    result = lobe("db", "migrate")
    assert result.returncode == 2
    assert "DATABASE_URL is not set" in result.stderr


def test_dev_rejects_an_unknown_service_by_name(tmp_path: Path) -> None:
    result = lobe("dev", "--state-dir", str(tmp_path), "--only", "gatewy")
    assert result.returncode == 1
    assert "unknown service(s) gatewy" in result.stderr


async def test_admin_commands_announce_each_change_to_the_gateways(database_url: str, nats_url: str) -> None:
    env = {"DATABASE_URL": database_url, "NATS_URL": nats_url}
    assert lobe("db", "migrate", **env).returncode == 0
    nc = await nats.connect(nats_url)
    try:
        changed = await nc.subscribe(BILLING_ACCOUNT_CHANGED)
        revocations = await nc.subscribe(AUTH_KEY_REVOKED)
        created = await lobe_async("admin", "create-user", "zoe", "--plan", "premium", **env)
        assert created.returncode == 0, created.stderr
        issued = await lobe_async("admin", "issue-key", "zoe", "--name", "laptop", **env)
        assert issued.returncode == 0, issued.stderr
        key_id = issued.stdout.split()[2]
        key = issued.stdout.split("api key ")[1].split()[0]
        assert key_id.startswith("key_")
        assert len(key) > 20
        limits = await lobe_async(
            "admin", "set-limits", "zoe", "--cost-usd", "12.5", "--requests", "100", **env
        )
        assert limits.returncode == 0, limits.stderr
        assert "cost_usd=Decimal('12.5')" in limits.stdout
        moved = await lobe_async("admin", "set-plan", "zoe", "basic", **env)
        assert moved.returncode == 0, moved.stderr
        promoted = await lobe_async("admin", "set-role", "zoe", "admin", **env)
        assert promoted.returncode == 0, promoted.stderr
        revoked = await lobe_async("admin", "revoke-key", key_id, **env)
        assert revoked.returncode == 0, revoked.stderr
        assert "of user zoe" in revoked.stdout
        plans = [AccountChanged.decode((await changed.next_msg(timeout=5)).data).plan for _ in range(4)]
        revocation = ApiKeyRevoked.decode((await revocations.next_msg(timeout=5)).data)
    finally:
        await nc.close()
    conn = await asyncpg.connect(database_url)
    role = await conn.fetchval("SELECT role FROM users WHERE id = 'zoe'")
    await conn.close()
    assert plans == ["premium", "premium", "basic", "basic"]  # created, limits, plan, role changed
    assert role == "admin"
    assert (revocation.user_id, revocation.api_key_id) == ("zoe", key_id)


async def test_admin_reset_usage_closes_the_current_period_and_announces_the_new_one(
    database_url: str, nats_url: str
) -> None:
    env = {"DATABASE_URL": database_url, "NATS_URL": nats_url}
    assert lobe("db", "migrate", **env).returncode == 0
    assert lobe("admin", "create-user", "yan", **env).returncode == 0
    nc = await nats.connect(nats_url)
    try:
        resets = await nc.subscribe(BILLING_USAGE_RESET)
        first = await lobe_async("admin", "reset-usage", "yan", **env)
        second = await lobe_async("admin", "reset-usage", "yan", **env)
        facts = [UsageReset.decode((await resets.next_msg(timeout=5)).data) for _ in range(2)]
    finally:
        await nc.close()
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    calendar = facts[0].closed_period
    assert f"usage of yan: period {calendar} closed, {calendar}.1 started" in first.stdout
    assert f"usage of yan: period {calendar}.1 closed, {calendar}.2 started" in second.stdout
    assert [(f.closed_period, f.period) for f in facts] == [
        (calendar, f"{calendar}.1"),
        (f"{calendar}.1", f"{calendar}.2"),
    ]
    missing = lobe("admin", "reset-usage", "nobody", **env)
    assert missing.returncode == 1
    assert "user 'nobody' not found" in missing.stderr


def test_admin_without_nats_url_says_why_it_needs_it(database_url: str) -> None:
    result = lobe("admin", "revoke-key", "key_1", DATABASE_URL=database_url)
    assert result.returncode == 2
    assert "NATS_URL not set" in result.stderr
    assert "announced to the gateways" in result.stderr


def test_admin_with_nats_unreachable_fails_without_a_traceback(database_url: str) -> None:
    unreachable = f"nats://127.0.0.1:{free_port()}"
    result = lobe("admin", "create-user", "zed", DATABASE_URL=database_url, NATS_URL=unreachable)
    assert result.returncode == 1
    assert "cannot connect" in result.stderr
    assert "Traceback" not in result.stderr


def test_admin_naming_a_missing_user_or_plan_fails_with_its_name(database_url: str, nats_url: str) -> None:
    env = {"DATABASE_URL": database_url, "NATS_URL": nats_url}
    assert lobe("db", "migrate", **env).returncode == 0
    result = lobe("admin", "set-plan", "nobody", "basic", **env)
    assert result.returncode == 1
    assert "user 'nobody' not found" in result.stderr
    result = lobe("admin", "create-user", "nobody", "--plan", "gold", **env)
    assert result.returncode == 1
    assert "plan 'gold' is not one of" in result.stderr


def test_db_retention_reports_what_it_dropped(database_url: str) -> None:
    assert lobe("db", "migrate", DATABASE_URL=database_url).returncode == 0
    result = lobe("db", "retention", "--keep-months", "12", DATABASE_URL=database_url)
    assert result.returncode == 0, result.stderr
    assert "no partition old enough to drop" in result.stdout
    assert "pruned 0 request ids" in result.stdout


def test_loadtest_refuses_a_load_level_that_is_not_positive(tmp_path: Path) -> None:
    result = lobe("loadtest", "--concurrency", "8,0", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "concurrency and rate must be positive" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_loadtest_direct_measures_the_fake_upstream_alone_and_writes_its_report(tmp_path: Path) -> None:
    result = lobe("loadtest", "--target", "direct", "--chunks", "3", "--rate", "200", "--requests", "40",
                  "--warmup", "5", "--out", str(tmp_path), "--name", "direct", "--quiet")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "| 200 req/s | 40 | 0 |" in result.stdout
    assert {p.name for p in tmp_path.iterdir()} == {
        "direct.json",
        "direct.md",
        "direct-load.png",
        "direct-time.png",
    }
