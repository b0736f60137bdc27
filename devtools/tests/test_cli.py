"""The `lobe` console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LOBE = str(Path(sys.executable).parent / "lobe")


def lobe(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | env
    return subprocess.run([LOBE, *args], env=environ, capture_output=True, text=True, timeout=60, check=False)


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


def test_admin_commands_create_a_user_whose_issued_key_billing_accepts_and_revokes(database_url: str) -> None:
    assert lobe("db", "migrate", DATABASE_URL=database_url).returncode == 0
    created = lobe("admin", "create-user", "zoe", "--plan", "premium", DATABASE_URL=database_url)
    assert created.returncode == 0, created.stderr
    issued = lobe("admin", "issue-key", "zoe", "--name", "laptop", DATABASE_URL=database_url)
    assert issued.returncode == 0, issued.stderr
    key_id = issued.stdout.split()[2]
    key = issued.stdout.split("api key ")[1].split()[0]
    assert key_id.startswith("key_")
    assert len(key) > 20
    limits = lobe(
        "admin", "set-limits", "zoe", "--cost-usd", "12.5", "--requests", "100", DATABASE_URL=database_url
    )
    assert limits.returncode == 0, limits.stderr
    assert "cost_usd=Decimal('12.5')" in limits.stdout
    revoked = lobe("admin", "revoke-key", key_id, DATABASE_URL=database_url)
    assert revoked.returncode == 0, revoked.stderr
    assert "of user zoe" in revoked.stdout


def test_admin_naming_a_missing_user_fails_with_its_name(database_url: str) -> None:
    assert lobe("db", "migrate", DATABASE_URL=database_url).returncode == 0
    result = lobe("admin", "set-plan", "nobody", "basic", DATABASE_URL=database_url)
    assert result.returncode == 1
    assert "user 'nobody' not found" in result.stderr


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
