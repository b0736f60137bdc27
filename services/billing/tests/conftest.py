"""Fixtures: a migrated database per test (cloned from a session template) and a running service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from lobe.billing.migrations import apply_migrations
from lobe.billing.service import BillingService

from .support import make_settings


@pytest.fixture
def billing_db(pg_templates: Any, make_database: Callable[..., str]) -> str:
    """A fresh database with the billing schema (cloned from a template migrated once)."""
    template = pg_templates.get("billing", apply_migrations)
    return make_database(template=template)


@pytest.fixture
async def billing(nats_url: str, billing_db: str) -> AsyncIterator[BillingService]:
    async with BillingService(make_settings(nats_url, billing_db)) as svc:
        yield svc
