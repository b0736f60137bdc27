"""Expand/contract: the previous release's billing runs against the schema of this one.

During a rollout, and after `make rollback` (which reverses no migration), the billing that ran
before this release's migrations meets the schema they made. So: take billing, shared, devtools and
their tests from the previous release (the newest `v*` tag reachable from HEAD; without tags, the
commit before the newest migration was added, or HEAD while that migration is not committed yet),
put this tree's migrations in its migrations package, and run that release's own billing test
suite on it. Every query the previous code makes, it makes against the new schema; a migration
that drops or renames a column the previous release reads fails here (docs/deploy.md,
"Migrations: expand, then contract").

Needs the repository's history: CI checks out with fetch-depth 0, as `git clone` does.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = Path("services/billing/src/lobe/billing/migrations")
# What the previous release's billing test suite needs of its tree: all of its code (the test harness
# imports every service), so nothing of this tree's editable installs runs beside it.
PATHS = ["conftest.py", "pyproject.toml", "shared", "devtools", "services", "docs"]
SOURCES = [
    "services/billing/src",
    "services/gateway/src",
    "services/chat-worker/src",
    "services/metrics/src",
    "shared/src",
    "devtools/src",
]


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def previous_release() -> str:
    tag = subprocess.run(
        ["git", "describe", "--tags", "--abbrev=0", "--match", "v*", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if tag.returncode == 0:
        return tag.stdout.strip()
    newest = sorted((ROOT / MIGRATIONS).glob("*.sql"))[-1].relative_to(ROOT)
    # Along main's first parents, a merge that brought the migration in counts as adding it (-m): its
    # first parent is then the release before it, whichever branch the file was written on.
    added = git("log", "--first-parent", "-m", "--diff-filter=A", "--format=%H", "-1", "--", str(newest))
    if not added:  # the newest migration is not committed yet: HEAD is the release before it
        return git("rev-parse", "HEAD")
    parents = git("rev-list", "--parents", "-n", "1", added).split()[1:]
    assert parents, (
        f"{added[:12]} added {newest.name} but has no parent here: a shallow clone? "
        "(this test needs the history: fetch-depth 0)"
    )
    return parents[0]


def checkout(rev: str, dest: Path) -> None:
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev, *PATHS], cwd=ROOT, capture_output=True, timeout=120
    )
    assert archive.returncode == 0, archive.stderr.decode()
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="tar")


def with_current_migrations(tree: Path) -> list[str]:
    old = tree / MIGRATIONS
    for sql in old.glob("*.sql"):
        sql.unlink()
    names = []
    for sql in sorted((ROOT / MIGRATIONS).glob("*.sql")):
        shutil.copy2(sql, old / sql.name)
        names.append(sql.name)
    return names


@pytest.mark.timeout(900)
def test_the_previous_release_of_billing_passes_its_own_tests_on_this_releases_schema(
    tmp_path: Path,
) -> None:
    rev = previous_release()
    tree = tmp_path / "previous"
    checkout(rev, tree)
    migrations = with_current_migrations(tree)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(tree / s) for s in SOURCES),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    # The previous release's code, not this tree's editable install, is what runs.
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import lobe.billing.migrations as m, lobe.shared as s; print(m.__file__, s.__file__)",
        ],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert where.returncode == 0, where.stderr
    assert all(path.startswith(str(tree)) for path in where.stdout.split()), where.stdout

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "services/billing/tests"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert result.returncode == 0, (
        f"billing at {rev[:12]} fails on the schema of migrations {migrations}:\n"
        + result.stdout[-6000:]
        + result.stderr[-2000:]
    )
    assert " passed" in result.stdout.splitlines()[-1], result.stdout[-500:]
