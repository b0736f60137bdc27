"""`python -m lobe.billing`: run the billing service until SIGTERM or SIGINT."""

from __future__ import annotations

import sys

from lobe.billing.errors import MigrationError
from lobe.billing.service import SERVICE_NAME, BillingService
from lobe.billing.settings import BillingSettings
from lobe.shared.config_file import ConfigError
from lobe.shared.process import run_service, stop_requested


async def serve(settings: BillingSettings) -> None:
    stop = stop_requested()
    async with BillingService(settings):
        await stop.wait()


def main() -> None:
    settings = BillingSettings()
    try:
        run_service(SERVICE_NAME, settings, lambda: serve(settings))
    except (ConfigError, MigrationError) as exc:
        print(f"billing: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
