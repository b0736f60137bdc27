"""Settings fragments. Each service builds one settings class from these (twelve-factor).

Standard variable names where they exist (NATS_URL, DATABASE_URL, REDIS_URL, OTEL_*).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
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


class DatabaseSettings(Fragment):
    database_url: SecretStr = Field(
        default=SecretStr("postgresql://postgres@127.0.0.1:5432/lobe"), description="PostgreSQL DSN."
    )


class RedisSettings(Fragment):
    # Two roles, two servers in production: state must never be evicted, the cache must be.
    redis_url: SecretStr = Field(
        default=SecretStr("redis://127.0.0.1:6379/0"),
        description="Redis for state (rate-limit counters, revocations): noeviction, AOF.",
    )
    cache_redis_url: SecretStr | None = Field(
        default=None, description="Redis for the response cache (allkeys-lru); unset = REDIS_URL."
    )


class TelemetrySettings(Fragment):
    otel_service_name: str = Field(default="lobe", description="Service name on traces and logs.")
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP endpoint; tracing export is off when unset."
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
