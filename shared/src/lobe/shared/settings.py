"""Settings fragments. Each service builds one settings class from these (twelve-factor).

Standard variable names where they exist (NATS_URL, DATABASE_URL, REDIS_URL, OTEL_*).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Fragment(BaseSettings):
    """Base of every settings fragment, the shared ones here and a service's own."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)


class NatsSettings(Fragment):
    nats_url: str = Field(default="nats://127.0.0.1:4222", description="NATS server URL(s), comma-separated.")
    nats_connect_timeout_s: float = Field(
        default=2.0, gt=0, description="Give up one connect attempt after this."
    )
    # Every service declares the streams at start, so every service must be given the same value.
    nats_stream_replicas: int = Field(
        default=1, ge=1, le=5, description="JetStream replicas of the suite's streams (3 on a NATS cluster)."
    )
    # Each service has a NATS user of its own, allowed only the subjects the event catalog gives it
    # (lobe.shared.catalog.permissions; docs/security.md).
    nats_user: str | None = Field(
        default=None, description="NATS user (one per service; see docs/security.md)."
    )
    nats_password: SecretStr | None = Field(default=None, description="NATS_USER's password.")
    nats_creds: Path | None = Field(
        default=None, description="NATS credentials file (user JWT and NKey seed) instead of NATS_USER."
    )
    nats_tls_ca_file: Path | None = Field(
        default=None, description="CA bundle that signed the NATS servers' certificates: connect with TLS."
    )
    nats_tls_cert_file: Path | None = Field(
        default=None, description="Client certificate for NATS servers that verify clients (mutual TLS)."
    )
    nats_tls_key_file: Path | None = Field(default=None, description="NATS_TLS_CERT_FILE's private key.")

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> Self:
        if self.nats_password is not None and not self.nats_user:
            raise ValueError("NATS_PASSWORD is set without NATS_USER")
        if self.nats_creds is not None and self.nats_user:
            raise ValueError("set NATS_CREDS or NATS_USER, not both")
        if (self.nats_tls_cert_file is None) != (self.nats_tls_key_file is None):
            raise ValueError("NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE go together")
        return self

    @property
    def nats_servers(self) -> list[str]:
        return [s.strip() for s in self.nats_url.split(",") if s.strip()]

    @property
    def nats_tls(self) -> bool:
        """TLS when a CA or client certificate is configured, or a server URL says tls://."""
        configured = self.nats_tls_ca_file is not None or self.nats_tls_cert_file is not None
        return configured or any(url.startswith("tls://") for url in self.nats_servers)


class DatabaseSettings(Fragment):
    database_url: SecretStr = Field(
        default=SecretStr("postgresql://postgres@127.0.0.1:5432/lobe"), description="PostgreSQL DSN."
    )
    database_tls_ca_file: Path | None = Field(
        default=None,
        description="CA of the PostgreSQL server: connect with TLS and verify it (sslmode=verify-full).",
    )

    @model_validator(mode="after")
    def _tls_in_the_dsn(self) -> Self:
        # Folded into the DSN (libpq's parameters, which asyncpg reads), so every connection made
        # from DATABASE_URL, the pool's, the migrations' and lobe admin's, uses it alike.
        if self.database_tls_ca_file is not None:
            tls = {"sslmode": "verify-full", "sslrootcert": str(self.database_tls_ca_file)}
            self.database_url = SecretStr(with_query(self.database_url.get_secret_value(), tls))
        return self


class RedisSettings(Fragment):
    # Two roles, two servers in production: state must never be evicted, the cache must be.
    redis_url: SecretStr = Field(
        default=SecretStr("redis://127.0.0.1:6379/0"),
        description="Redis for state (rate-limit counters, revocations): noeviction, AOF.",
    )
    cache_redis_url: SecretStr | None = Field(
        default=None, description="Redis for the response cache (allkeys-lru); unset = REDIS_URL."
    )
    redis_tls_ca_file: Path | None = Field(
        default=None, description="CA of the Redis servers: connect with TLS (rediss://) and verify them."
    )

    def redis_from_url(self, url: SecretStr) -> dict[str, Any]:
        """redis-py `from_url` keywords for `url`: with REDIS_TLS_CA_FILE, TLS (rediss://) verified
        against that CA, which redis-py cannot read from the URL itself."""
        raw = url.get_secret_value()
        if self.redis_tls_ca_file is None:
            return {"url": raw}
        if raw.startswith("redis://"):
            raw = "rediss://" + raw.removeprefix("redis://")
        return {"url": raw, "ssl_ca_certs": str(self.redis_tls_ca_file), "ssl_cert_reqs": "required"}


TraceSampler = Literal[
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
]


class TelemetrySettings(Fragment):
    otel_service_name: str = Field(default="lobe", description="Service name on traces and logs.")
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP endpoint; tracing export is off when unset."
    )
    otel_traces_sampler: TraceSampler | None = Field(
        default=None,
        description="Head sampling (OpenTelemetry's names): parentbased_traceidratio keeps "
        "OTEL_TRACES_SAMPLER_ARG of the traces that start here and follows a caller's traceparent. "
        "Unset: every trace when exporting (parentbased_always_on), none started here when not.",
    )
    otel_traces_sampler_arg: float | None = Field(
        default=None, ge=0, le=1, description="The ratio of the traceidratio samplers (unset: 1.0)."
    )


class LogSettings(Fragment):
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Root log level."
    )
    log_format: Literal["json", "text"] = Field(default="json", description="json in production.")


class ServiceSettings(NatsSettings, TelemetrySettings, LogSettings):
    """What every service has: the bus, traces and logs (see lobe.shared.process.run_service)."""


class OpsSettings(Fragment):
    """The ops HTTP listener (health and /metrics) of a bus-only service."""

    ops_host: str = Field(
        default="127.0.0.1", description="Ops listener bind address (0.0.0.0 in containers)."
    )
    ops_port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port.")


def with_query(url: str, params: dict[str, str]) -> str:
    """`url` with `params` set in its query string (replacing any of the same name)."""
    parts = urlsplit(url)
    query = {**dict(parse_qsl(parts.query, keep_blank_values=True)), **params}
    return urlunsplit(parts._replace(query=urlencode(query)))
