"""Gateway settings (environment only)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from lobe.gateway.auth.settings import AdminSettings, CorsSettings, SessionSettings, SignInSettings
from lobe.gateway.ratelimit.client_ip import parse_networks
from lobe.shared.settings import OpsSettings, RedisSettings, ServiceSettings

MIB = 1024 * 1024


class GatewaySettings(
    ServiceSettings, RedisSettings, OpsSettings, SessionSettings, SignInSettings, AdminSettings, CorsSettings
):
    model_config = SettingsConfigDict(extra="ignore")

    otel_service_name: str = Field(default="gateway", description="Service name on traces and logs.")
    gateway_host: str = Field(default="127.0.0.1", description="Bind address (0.0.0.0 in containers).")
    gateway_port: int = Field(default=3210, ge=0, le=65535, description="HTTP port of the OpenAI API.")
    # Health and /metrics apart from the public API, so an Ingress routing GATEWAY_PORT exposes no metrics.
    ops_port: int = Field(default=3214, ge=0, le=65535, description="Health and /metrics; 0 picks one.")
    gateway_api_keys: SecretStr = Field(
        default=SecretStr(""),
        description="Bootstrap API keys, comma-separated `key:user_id[:plan]` (dev and break-glass).",
    )
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, description="Larger bodies get 413.")
    accept_timeout_s: float = Field(default=1.0, gt=0, description="Wait for a worker to take a request.")
    worker_silence_s: float = Field(
        default=5.0, gt=0, description="No frame this long: worker presumed dead."
    )
    request_timeout_s: float = Field(default=600.0, gt=0, description="Whole answer; then 504.")
    dispatch_attempts: int = Field(default=3, ge=1, description="Workers tried before giving up.")
    saturation_wait_s: float = Field(default=2.0, ge=0, description="Wait for a free worker, then 503.")
    expose_deployment_names: bool = Field(
        default=False,
        description="Send `X-Lobe-Deployment` (the deployment's name) on answers and errors; for "
        "internal clients only: names often say which account or key served.",
    )
    billing_enabled: bool = Field(
        default=True, description="Reserve each request's worst case with billing and quote its cost."
    )
    budget_leases: bool = Field(
        default=True,
        description="Admit chat and embeddings requests against budget leases billing grants (no "
        "round trip a request; exact holds near a limit; docs/billing.md, Budget leases).",
    )
    budget_fail_mode: Literal["open", "closed"] = Field(
        default="closed", description="When billing does not answer: admit (open) or 503 (closed)."
    )
    billing_timeout_s: float = Field(
        default=0.5, gt=0, description="Wait for billing's budget and price answers."
    )
    shutdown_delay_s: float = Field(
        default=0.0,
        ge=0,
        description="SIGTERM: readiness answers 503 this long before the listener closes, so load "
        "balancers stop sending first (the image sets 5).",
    )
    shutdown_grace_s: float = Field(
        default=30.0,
        ge=0,
        description="SIGTERM: in-flight answers get this long (the gateway's from closing its "
        "listener), then an error event.",
    )
    key_cache_ttl_s: float = Field(
        default=60.0, gt=0, description="How long a key billing vouched for is trusted without asking again."
    )
    default_max_output_tokens: int = Field(
        default=4096, ge=1, description="Output cap assumed for the worst case when the client sets none."
    )
    redis_timeout_s: float = Field(
        default=0.25,
        gt=0,
        description="Longest wait to connect to Redis; then the rate-limit fail mode, or a cache miss.",
    )
    redis_reply_timeout_s: float = Field(
        default=2.0,
        gt=0,
        description="Longest wait for Redis's reply on an open connection (a busy event loop counts "
        "against it: a burst must not look like an outage); then as REDIS_TIMEOUT_S.",
    )
    redis_max_connections: int = Field(
        default=64,
        ge=1,
        description="Connections per Redis client (state, cache); a request waits for a free one.",
    )
    redis_pool_wait_s: float = Field(
        default=2.0,
        gt=0,
        description="Longest wait for a free pooled Redis connection; then 503 (saturated, not down).",
    )
    redis_tracing: bool = Field(
        default=False,
        description="A span per Redis command (rate limits, response cache, sessions) in the request's "
        "trace; off: four per chat request, a third of its trace's bytes, and the instrumentation costs "
        "CPU even on unsampled requests (docs/observability.md).",
    )
    rate_limits_enabled: bool = Field(
        default=True, description="Per-user and per-IP rate limits, counted in REDIS_URL."
    )
    rate_limits_file: Path | None = Field(
        default=None, description="Rate-limit tiers YAML; unset = the seed's numbers (bundled)."
    )
    rate_limit_fail_mode: Literal["open", "closed"] = Field(
        default="open", description="When Redis does not answer: admit unchecked (open) or 503 (closed)."
    )
    concurrency_lease_s: float = Field(
        default=30.0,
        ge=3,
        description="A request's place under its tier's cap on requests in flight lasts this long "
        "unless renewed (every third of it): a gateway that dies frees its places within it.",
    )
    trusted_proxies: str = Field(
        default="",
        description="Proxies (CIDRs, comma-separated) whose X-Forwarded-For names the client IP; "
        "empty = the TCP peer is the client.",
    )
    cache_enabled: bool = Field(
        default=True,
        description="Answer repeated deterministic requests (temperature 0, or `X-Lobe-Cache: on`) "
        "from the response cache.",
    )
    cache_ttl_s: int = Field(
        default=3600, ge=1, description="How long an answer stays in the response cache."
    )
    cache_scope: Literal["user", "shared"] = Field(
        default="user", description="Cached answers are per user, or shared by every user."
    )
    cache_memory_bytes: int = Field(
        default=64 * MIB, ge=0, description="Per-process LRU in front of the cache Redis, in bytes; 0 = none."
    )
    cache_max_entry_bytes: int = Field(
        default=1 * MIB, ge=1, description="Answers larger than this (stored form) are not cached."
    )
    resume_window_s: int = Field(
        default=60,
        ge=1,
        description="A resumable stream (`X-Lobe-Resumable: true`) stays resumable this long after "
        "its last event, from any replica (kept in REDIS_URL).",
    )
    resume_grace_s: float = Field(
        default=10.0,
        ge=0,
        description="A resumable stream whose client left keeps its answer running this long; "
        "nobody resumed it by then: cancelled, as a plain stream is at once.",
    )
    resume_max_events: int = Field(
        default=20_000, ge=1, description="SSE events kept per resumable stream; past it, not resumable."
    )
    resume_max_bytes: int = Field(
        default=4 * MIB, ge=1024, description="Bytes kept per resumable stream; past it, not resumable."
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: str) -> str:
        parse_networks(value)  # a typo stops start-up with the entry named
        return value
