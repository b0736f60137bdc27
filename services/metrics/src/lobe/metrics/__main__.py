"""`python -m lobe.metrics`: configuration from the environment only."""

from __future__ import annotations

from lobe.metrics.service import serve
from lobe.metrics.settings import SERVICE_NAME, MetricsSettings
from lobe.shared.process import run_service


def main() -> None:
    settings = MetricsSettings()
    run_service(SERVICE_NAME, settings, lambda: serve(settings))


if __name__ == "__main__":
    main()
