"""`python -m lobe.billing`: run the billing service until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import sys

from lobe.billing.errors import MigrationError
from lobe.billing.service import SERVICE_NAME, BillingService
from lobe.billing.settings import BillingSettings
from lobe.shared.config_file import ConfigError
from lobe.shared.logs import setup_logging
from lobe.shared.signals import stop_requested
from lobe.shared.telemetry import setup_tracing


async def main() -> None:
    settings = BillingSettings()
    setup_logging(settings, SERVICE_NAME)
    setup_tracing(settings, SERVICE_NAME)
    stop = stop_requested()
    async with BillingService(settings):
        await stop.wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except (ConfigError, MigrationError) as exc:
        print(f"billing: {exc}", file=sys.stderr)
        sys.exit(2)
