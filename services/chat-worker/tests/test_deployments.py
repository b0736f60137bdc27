"""The routing file operators edit: the shipped example loads, a bad file names its field."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from lobe.chat_worker.deployments import load_catalog

EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "models.example.yaml"


def test_the_shipped_example_routes_every_provider_kind_and_keeps_mock() -> None:
    catalog = load_catalog(str(EXAMPLE))
    kinds = {d.provider for m in catalog.models for d in m.deployments}
    assert kinds == {"openai", "azure_openai", "anthropic", "gemini", "openai_compatible", "ollama", "mock"}
    assert catalog.get("mock") is not None
    assert [d.name for d in catalog.get("gpt-4o-mini").deployments] == [
        "openai-gpt-4o-mini",
        "azure-gpt-4o-mini",
    ]  # type: ignore[union-attr]


def test_a_deployment_without_its_base_url_is_rejected_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "models.yaml"
    bad.write_text("models:\n  - name: x\n    deployments:\n      - {name: d, provider: ollama}\n")
    with pytest.raises(ValidationError, match="needs base_url"):
        load_catalog(str(bad))


def test_an_unknown_provider_kind_is_rejected_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "models.yaml"
    bad.write_text("models:\n  - name: x\n    deployments:\n      - {name: d, provider: cohere}\n")
    with pytest.raises(ValidationError) as caught:
        load_catalog(str(bad))
    assert caught.value.errors()[0]["loc"] == ("models", 0, "deployments", 0, "provider")


def test_the_worker_refuses_to_start_with_a_bad_file_and_says_where(tmp_path: Path) -> None:
    bad = tmp_path / "models.yaml"
    bad.write_text("models:\n  - name: x\n    deployments:\n      - {name: d, provider: cohere}\n")
    env = {**os.environ, "MODELS_FILE": str(bad), "NATS_URL": "nats://127.0.0.1:1"}
    result = subprocess.run(
        [sys.executable, "-m", "lobe.chat_worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "models.0.deployments.0.provider" in result.stderr
