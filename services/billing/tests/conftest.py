"""Fixtures: a running billing service on a fresh database with its schema (`billing_db`: lobe.billing.testing)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from lobe.billing.service import BillingService

from .support import make_settings


@pytest.fixture
async def billing(nats_url: str, billing_db: str) -> AsyncIterator[BillingService]:
    async with BillingService(make_settings(nats_url, billing_db)) as svc:
        yield svc
