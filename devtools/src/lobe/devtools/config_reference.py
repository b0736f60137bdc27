"""The README's configuration reference and .env.example, generated from the services' settings.

`python -m lobe.devtools.config_reference` prints the README table, `... --env-example` the
.env.example file; tests fail when either copy is stale, so a new setting cannot ship undocumented.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from lobe.billing.settings import BillingSettings
from lobe.chat_worker.deployments import DEFAULT_KEY_ENV
from lobe.chat_worker.settings import WorkerSettings
from lobe.gateway.auth.provider_config import OidcProviderSettings
from lobe.gateway.settings import GatewaySettings
from lobe.metrics.settings import MetricsSettings

SERVICES: dict[str, type[BaseSettings]] = {
    "gateway": GatewaySettings,
    "chat-worker": WorkerSettings,
    "billing": BillingSettings,
    "metrics": MetricsSettings,
}

# Read by the tools rather than by a service.
TOOL_VARIABLES = [
    ("GATEWAY_OPS_PORT", "lobe dev", "3214", "gateway ops (health, /metrics) port under `lobe dev`."),
    ("CHAT_WORKER_OPS_PORT", "lobe dev", "3211", "chat-worker ops port under `lobe dev`."),
    ("BILLING_OPS_PORT", "lobe dev", "3212", "billing ops and usage API port under `lobe dev`."),
    ("METRICS_OPS_PORT", "lobe dev", "3213", "metrics ops port under `lobe dev`."),
    (
        "LOBE_PROVIDER_FIXTURES",
        "tests",
        "`tests/fixtures/providers`",
        "Provider transcripts for fake upstreams.",
    ),
]

# Read by docker-compose.yml itself (${...}), not by a service.
COMPOSE_VARIABLES = [
    (
        "POSTGRES_PASSWORD",
        "lobe-dev-only",
        "PostgreSQL password of the compose suite (billing's DATABASE_URL uses it).",
    ),
    ("GRAFANA_ADMIN_PASSWORD", "lobe-dev-only", "Grafana's admin password."),
    ("BACKUP_INTERVAL_S", "86400", "postgres-backup: seconds between two pg_dumps into ./backup."),
    ("BACKUP_KEEP", "14", "postgres-backup: dumps kept in ./backup."),
]

# Read once per name in OIDC_PROVIDERS, with that name in the prefix (lobe.gateway.auth.provider_config).
PER_PROVIDER_PREFIX = "OIDC_<NAME>_"


def per_provider() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) of each setting a named OpenID provider reads."""
    return [
        (f"{PER_PROVIDER_PREFIX}{name.upper()}", _default(info.default), info.description or "")
        for name, info in OidcProviderSettings.model_fields.items()
    ]


START, END = "<!-- config-reference -->", "<!-- /config-reference -->"


@dataclass
class Variable:
    default: str
    description: str
    services: list[str] = field(default_factory=list)


def _default(value: Any) -> str:
    if isinstance(value, SecretStr):
        return "(secret)" if value.get_secret_value() else "(empty)"
    if value is None:
        return "(unset)"
    return f"`{json.dumps(value) if not isinstance(value, str) else value}`"


def collect() -> dict[str, Variable]:
    variables: dict[str, Variable] = {}
    for service, settings in SERVICES.items():
        for name, info in settings.model_fields.items():
            env = name.upper()
            default = "(per process)" if info.default_factory else _default(info.default)
            entry = variables.setdefault(env, Variable(default, info.description or ""))
            if entry.default != default:  # e.g. OPS_PORT: each service has its own
                entry.default = "per service"
            entry.description = entry.description or info.description or ""
            entry.services.append(service)
    return variables


def render() -> str:
    lines = [START, "", "| variable | used by | default | meaning |", "|---|---|---|---|"]
    for env, var in sorted(collect().items()):
        lines.append(f"| `{env}` | {', '.join(var.services)} | {var.default} | {var.description} |")
    for env in sorted(set(DEFAULT_KEY_ENV.values())):
        lines.append(
            f"| `{env}` | chat-worker | (unset) | Default provider key; a deployment may name another (`api_key_env`). |"
        )
    for env, default, meaning in per_provider():
        lines.append(f"| `{env}` | gateway | {default} | {meaning} (each name in OIDC_PROVIDERS) |")
    for env, user, default, meaning in TOOL_VARIABLES:
        lines.append(f"| `{env}` | {user} | {default} | {meaning} |")
    lines += ["", END]
    return "\n".join(lines)


ENV_HEADER = """\
# Every variable the Lobe services read, with its default. Copy to .env (never commit .env):
# docker compose reads it for the ${...} in docker-compose.yml and hands it to every service, where
# the values docker-compose.yml sets itself (URLs, hosts, ports) take precedence.
# Generated: python -m lobe.devtools.config_reference --env-example > .env.example
"""


def _raw_default(value: Any) -> str:
    if isinstance(value, SecretStr) or value is None:
        return ""  # never print a secret default; unset means the documented fallback
    return value if isinstance(value, str) else json.dumps(value)


def _env_entry(env: str, users: str, default: str, meaning: str, *, active: bool = False) -> list[str]:
    return [f"# {meaning} ({users})", f"{'' if active else '# '}{env}={default}", ""]


def render_env_example() -> str:
    lines = [ENV_HEADER, "## docker compose", ""]
    for env, default, meaning in COMPOSE_VARIABLES:
        lines += _env_entry(env, "docker compose", default, meaning, active=True)
    lines += ["## Provider keys (chat-worker); a deployment may name another variable (api_key_env)", ""]
    for env in sorted(set(DEFAULT_KEY_ENV.values())):
        lines += [f"{env}=", ""]
    lines += ["## Service settings: uncomment to change a default", ""]
    defaults = {
        name.upper(): "" if info.default_factory else _raw_default(info.default)
        for settings in SERVICES.values()
        for name, info in settings.model_fields.items()
    }
    for env, var in sorted(collect().items()):
        per_service = var.default == "per service"
        meaning = f"{var.description} Default: per service." if per_service else var.description
        lines += _env_entry(env, ", ".join(var.services), "" if per_service else defaults[env], meaning)
    lines += ["## Each OpenID provider named in OIDC_PROVIDERS: <NAME> is its name, upper-cased", ""]
    for env, _, meaning in per_provider():
        lines += _env_entry(env, "gateway", "", meaning)
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> None:
    if "--env-example" in sys.argv[1:]:
        sys.stdout.write(render_env_example())
        return
    sys.stdout.write(render() + "\n")


if __name__ == "__main__":
    main()
