"""`python -m lobe.metrics`: settings, then the shared service runtime (lobe.shared.process)."""

from __future__ import annotations

from lobe.metrics.service import MetricsService
from lobe.metrics.settings import SERVICE_NAME, MetricsSettings
from lobe.shared.process import run_service


def main() -> None:
    settings = MetricsSettings()
    run_service(SERVICE_NAME, settings, lambda runtime: MetricsService(settings).open(runtime))


if __name__ == "__main__":
    main()
