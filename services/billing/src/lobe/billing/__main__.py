"""`python -m lobe.billing`: settings, then the shared service runtime (lobe.shared.process)."""

from __future__ import annotations

import sys

from lobe.billing.errors import MigrationError
from lobe.billing.service import SERVICE_NAME, BillingService
from lobe.billing.settings import BillingSettings
from lobe.shared.config_file import ConfigError
from lobe.shared.process import run_service


def main() -> None:
    settings = BillingSettings()
    try:
        run_service(SERVICE_NAME, settings, lambda runtime: BillingService(settings).open(runtime))
    except (ConfigError, MigrationError) as exc:
        print(f"billing: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
