"""Configuration of the metrics service, from the environment only."""

from __future__ import annotations

from pydantic import Field

from lobe.shared.settings import OpsSettings, ServiceSettings

SERVICE_NAME = "metrics"
DEFAULT_OPS_PORT = 3213


class MetricsSettings(ServiceSettings, OpsSettings):
    ops_port: int = Field(default=DEFAULT_OPS_PORT, ge=0, le=65535, description="Health and /metrics.")
    otel_service_name: str = Field(default=SERVICE_NAME, description="Service name on traces and logs.")
    metrics_max_models: int = Field(
        default=500,
        ge=1,
        description="Distinct provider/model label pairs kept; later ones are folded into model='other'.",
    )
    metrics_dedupe_window: int = Field(
        default=50_000,
        ge=0,
        description="Recent request ids remembered to drop redelivered usage events; 0 disables.",
    )
    metrics_lag_interval_s: float = Field(
        default=5.0, gt=0, description="How often JetStream consumer lag is read from the server."
    )
    metrics_shutdown_grace_s: float = Field(default=10.0, gt=0, description="Longest drain on SIGTERM.")
