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
