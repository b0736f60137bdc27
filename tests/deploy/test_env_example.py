""".env.example lists every variable the services and docker-compose.yml read, and stays in step."""

from __future__ import annotations

import re
from pathlib import Path

from lobe.devtools.config_reference import COMPOSE_VARIABLES, collect, render_env_example

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / ".env.example"


def listed() -> set[str]:
    return set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", EXAMPLE.read_text(), re.M))


def test_env_example_is_what_the_settings_classes_generate() -> None:
    assert EXAMPLE.read_text() == render_env_example(), (
        ".env.example is stale: python -m lobe.devtools.config_reference --env-example > .env.example"
    )


def test_every_setting_of_every_service_is_listed() -> None:
    missing = set(collect()) - listed()
    assert not missing
    assert {"NATS_STREAM_REPLICAS", "CACHE_REDIS_URL", "OPS_PORT", "DATABASE_URL"} <= listed()


def test_every_variable_docker_compose_interpolates_is_listed() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", compose))
    assert interpolated, "docker-compose.yml reads its credentials from the environment"
    assert interpolated <= listed(), sorted(interpolated - listed())
    assert {name for name, _, _ in COMPOSE_VARIABLES} <= interpolated, "a compose variable nothing reads"


def test_no_secret_value_is_written_into_the_example() -> None:
    for line in EXAMPLE.read_text().splitlines():
        name, _, value = line.removeprefix("# ").partition("=")
        if name.endswith(("_KEY", "_TOKEN", "_URL")) and name != "OTEL_EXPORTER_OTLP_ENDPOINT":
            assert "@" not in value, line
            assert "sk-" not in value, line
