"""pytest fixtures for tests that run billing: its own and the cross-service suites (tests/e2e,
tests/faults), loaded by the repository's conftest.py.

They live with billing so that a test gets the schema this billing migrates; the harness
(lobe.devtools' pytest plugin) lends the PostgreSQL machinery and imports no service.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from lobe.billing.migrations import apply_migrations


@pytest.fixture
def billing_db(make_migrated_database: Callable[[str, Callable[[str], Awaitable[Any]]], str]) -> str:
    """A fresh database with billing's schema, cloned from a template migrated once per session."""
    return make_migrated_database("billing", apply_migrations)
