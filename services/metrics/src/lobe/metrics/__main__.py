"""`python -m lobe.metrics`: configuration from the environment only."""

from __future__ import annotations

import asyncio

from lobe.metrics.service import serve
from lobe.metrics.settings import SERVICE_NAME, MetricsSettings
from lobe.shared.logs import setup_logging
from lobe.shared.telemetry import setup_tracing


def main() -> None:
    settings = MetricsSettings()
    setup_logging(settings, SERVICE_NAME)
    setup_tracing(settings, SERVICE_NAME)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
