"""The README's configuration reference, generated from the services' settings classes.

`python -m lobe.devtools.config_reference` prints it; a test fails when the README's copy is
stale, so a new setting cannot ship undocumented.
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
        "`../shared/fixtures/providers`",
        "Provider transcripts for fake upstreams.",
    ),
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
    for env, user, default, meaning in TOOL_VARIABLES:
        lines.append(f"| `{env}` | {user} | {default} | {meaning} |")
    lines += ["", END]
    return "\n".join(lines)


def main() -> None:
    sys.stdout.write(render() + "\n")


if __name__ == "__main__":
    main()
