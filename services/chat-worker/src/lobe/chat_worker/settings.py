"""Chat worker settings (environment only)."""

from __future__ import annotations

import os
import re
import socket

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from lobe.shared.settings import OpsSettings, ServiceSettings

# The worker id is a NATS subject token (chat.cancel.<worker_id>): a host name's dots would split it.
_TOKEN_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class WorkerSettings(ServiceSettings, OpsSettings):
    model_config = SettingsConfigDict(extra="ignore")

    otel_service_name: str = Field(default="chat-worker", description="Service name on traces and logs.")
    ops_port: int = Field(default=3211, ge=0, le=65535, description="Health and /metrics; 0 picks one.")
    models_file: str | None = Field(default=None, description="Model routing YAML; unset = mock only.")
    models_reload_interval_s: float = Field(
        default=2.0, ge=0, description="Check MODELS_FILE for changes this often (0: on SIGHUP only)."
    )
    routing_store_timeout_s: float = Field(
        default=0.25,
        gt=0,
        description="Longest wait on the shared routing store before routing on local state.",
    )
    routing_snapshot_interval_s: float = Field(
        default=0.05,
        gt=0,
        description="Publish this worker's in-flight counts and latencies at most this often.",
    )
    worker_id: str = Field(
        default_factory=lambda: f"{_TOKEN_UNSAFE.sub('-', socket.gethostname())}-{os.getpid()}",
        pattern=r"^[A-Za-z0-9_-]{1,128}$",
        description="Names this worker in logs and in its cancel subject (unique per process).",
    )
    worker_max_concurrency: int = Field(default=256, ge=1, description="Streams run at once.")
    heartbeat_interval_s: float = Field(default=1.0, gt=0, description="While the provider is silent.")
    shutdown_grace_s: float = Field(default=20.0, ge=0, description="SIGTERM: let streams finish.")
