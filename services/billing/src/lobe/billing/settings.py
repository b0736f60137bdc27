"""BillingSettings: the service's whole configuration, from the environment only."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from lobe.shared.settings import DatabaseSettings, OpsSettings, ServiceSettings


class BillingSettings(ServiceSettings, DatabaseSettings, OpsSettings):
    ops_port: int = Field(default=3212, ge=0, le=65535, description="Ops + usage API port; 0 picks one.")
    otel_service_name: str = Field(default="billing", description="Service name on traces and logs.")
    prices_file: Path | None = Field(default=None, description="Price table YAML; unset = bundled table.")
    plans_file: Path | None = Field(default=None, description="Plans YAML; unset = bundled plans.")
    billing_admin_token: SecretStr | None = Field(
        default=None, description="Bearer token for /v1/admin/*; admin API disabled when unset."
    )
    billing_batch_size: int = Field(default=500, ge=1, le=5000, description="Usage events per fetch.")
    billing_fetch_timeout_s: float = Field(default=1.0, gt=0, description="Max wait to fill a batch.")
    billing_consumers: int = Field(default=2, ge=1, le=32, description="Concurrent fetch loops.")
    billing_db_pool_size: int = Field(
        default=8, ge=2, le=100, description="PostgreSQL connections kept open."
    )
    billing_ack_wait_s: float = Field(
        default=60, gt=0, description="Usage a crashed billing had fetched is redelivered after this."
    )
    billing_reservation_ttl_s: float = Field(
        default=900, gt=0, description="A budget hold not settled or released by then is freed."
    )
    billing_lease_term_s: float = Field(
        default=30,
        gt=0,
        description="A gateway admits under a budget lease for this long; the lease is freed "
        "BILLING_RESERVATION_TTL_S later if nobody returns it (docs/billing.md, Budget leases).",
    )
    billing_lease_max_requests: int = Field(
        default=256, ge=0, le=100_000, description="The most requests one budget lease covers; 0: no leases."
    )
    billing_lease_min_requests: int = Field(
        default=8,
        ge=1,
        le=100_000,
        description="No lease smaller than this many requests: near a limit, exact holds only.",
    )
